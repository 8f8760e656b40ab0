import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { chromium, type Browser } from "playwright-core";

/** Where the browser tests write their screenshots, for a reviewer to look at (gitignored). */
export const SCREENSHOT_DIR = path.resolve("artifacts", "screenshots");

const CANDIDATES = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/**
 * The machine's Chromium (Debian's `chromium`; CHROMIUM_PATH for another), or why there is none.
 * CI installs it (.ci/run); without one, the browser tests are reported as skipped — never as
 * passed — except under CI, where a missing browser is a failure.
 */
export function findChromium(): { path: string } | { missing: string } {
  const found = CANDIDATES.find((candidate): candidate is string => Boolean(candidate) && existsSync(candidate!));
  if (found) return { path: found };
  const missing = "no Chromium: install Debian's chromium (apt-get install chromium) or set CHROMIUM_PATH";
  if (process.env.CI) throw new Error(`${missing} (CI must run the browser tests)`);
  return { missing };
}

/** Headless Chromium as the machine allows it: no sandbox (CI runs as root), no background traffic to a closed network. */
export async function launchChromium(executablePath: string): Promise<Browser> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  return chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
}
