// `npm run lint`: ESLint's and typescript-eslint's recommended rules over src/, test/ and bench/.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".data/", "artifacts/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // The admin page's script runs in the browser.
    files: ["src/admin/assets/*.js"],
    languageOptions: {
      sourceType: "script",
      globals: Object.fromEntries(
        ["document", "window", "navigator", "fetch", "DOMParser", "Element", "HTMLFormElement"].map((name) => [name, "readonly"]),
      ),
    },
  },
);
