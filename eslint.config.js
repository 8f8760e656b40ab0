// `npm run lint`: ESLint's and typescript-eslint's recommended rules over src/, test/ and bench/.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".data/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
);
