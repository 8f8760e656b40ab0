import { readFile } from "node:fs/promises";
import path from "node:path";
import { packageRoot } from "../../src/package-info.js";

/** A fenced code block of a document, named by the `<!-- snippet: NAME -->` comment right before it. */
export interface Snippet {
  name: string;
  /** The fence's info string: js, python, sh… */
  language: string;
  code: string;
}

export interface Document {
  /** Every marked block, by name. */
  snippets: Map<string, Snippet>;
  /** The languages of the blocks that carry no marker (what the document shows without proving). */
  unmarkedLanguages: string[];
}

const FENCE = /^```([\w-]*)[^\n]*\n([\s\S]*?)^```[ \t]*$/gm;
const MARKER = /<!--\s*snippet:\s*([^>]*?)\s*-->\s*$/;

/**
 * Reads docs/<file> and collects its fenced code blocks. A block is a snippet when the last
 * non-blank line before its fence is a marker; a name used twice is an error (the test could
 * otherwise prove one block and publish the other).
 */
export async function readDocument(file: string): Promise<Document> {
  const text = await readFile(path.join(packageRoot, "docs", file), "utf8");
  const snippets = new Map<string, Snippet>();
  const unmarkedLanguages: string[] = [];
  for (const match of text.matchAll(FENCE)) {
    const language = match[1]!;
    const before = text.slice(0, match.index).trimEnd();
    const marker = MARKER.exec(before);
    if (!marker) {
      unmarkedLanguages.push(language);
      continue;
    }
    const name = marker[1]!;
    if (snippets.has(name)) throw new Error(`docs/${file}: snippet "${name}" is marked twice`);
    snippets.set(name, { name, language, code: match[2]! });
  }
  return { snippets, unmarkedLanguages };
}

/** The snippet called `name`, in `language`; fails naming what is missing. */
export function snippet(document: Document, file: string, name: string, language: string): Snippet {
  const found = document.snippets.get(name);
  if (!found) throw new Error(`docs/${file} has no block marked <!-- snippet: ${name} -->`);
  if (found.language !== language) throw new Error(`docs/${file}: snippet "${name}" is \`\`\`${found.language}, expected \`\`\`${language}`);
  return found;
}
