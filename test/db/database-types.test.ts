import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import ts from "typescript";
import { packageRoot } from "../../src/package-info.js";
import { useHarness } from "../support/harness.js";

// The Kysely `Database` of src/db/database.ts is written by hand; this keeps it true to what the
// migrations build. For every table it declares: the same columns, the same nullability, and a
// TypeScript type that matches the column's Postgres type.

const h = useHarness({});

interface DeclaredColumn {
  name: string;
  /** The column's type with Kysely's wrappers (Generated<…>, ColumnType<…>) and `| null` taken off. */
  type: string;
  nullable: boolean;
}

/** Table name → columns, read from the interfaces `Database` points at. */
async function declaredTables(): Promise<Map<string, DeclaredColumn[]>> {
  const file = path.join(packageRoot, "src/db/database.ts");
  const source = ts.createSourceFile(file, await readFile(file, "utf8"), ts.ScriptTarget.Latest, true);
  const interfaces = new Map<string, ts.InterfaceDeclaration>();
  source.forEachChild((node) => {
    if (ts.isInterfaceDeclaration(node)) interfaces.set(node.name.text, node);
  });
  const database = interfaces.get("Database");
  assert.ok(database, "src/db/database.ts declares interface Database");
  const tables = new Map<string, DeclaredColumn[]>();
  for (const member of database.members) {
    assert.ok(ts.isPropertySignature(member) && member.type && ts.isTypeReferenceNode(member.type));
    const table = (member.name as ts.StringLiteral).text;
    const shape = interfaces.get(member.type.typeName.getText(source));
    assert.ok(shape, `the interface for ${table} is declared in the same file`);
    tables.set(
      table,
      shape.members.filter(ts.isPropertySignature).map((column) => {
        const parts = unionParts(column.type!, source);
        return {
          name: column.name.getText(source),
          type: parts.filter((part) => part !== "null").join(" | "),
          nullable: parts.includes("null"),
        };
      }),
    );
  }
  return tables;
}

function unionParts(node: ts.TypeNode, source: ts.SourceFile): string[] {
  if (ts.isUnionTypeNode(node)) return node.types.flatMap((part) => unionParts(part, source));
  if (ts.isTypeReferenceNode(node) && node.typeName.getText(source) === "Generated") return unionParts(node.typeArguments![0]!, source);
  if (ts.isLiteralTypeNode(node) && node.literal.kind === ts.SyntaxKind.NullKeyword) return ["null"];
  if (ts.isLiteralTypeNode(node) && ts.isStringLiteral(node.literal)) return ["string"];
  return [node.getText(source)];
}

/** The TypeScript type each Postgres type reads as through src/db/pool.ts (int8 as a number). */
const TS_TYPE_OF: Record<string, string> = {
  uuid: "string",
  text: "string",
  "character varying": "string",
  integer: "number",
  smallint: "number",
  bigint: "number",
  "double precision": "number",
  numeric: "string",
  boolean: "boolean",
  jsonb: "unknown",
  json: "unknown",
  "timestamp with time zone": "Timestamp",
  ARRAY: "string[]",
};

test("every table of the Kysely Database has exactly the migrated columns, nullability and types", async () => {
  const tables = await declaredTables();
  assert.ok(tables.size >= 4, "tables are declared");
  const mismatches: string[] = [];
  for (const [qualified, declared] of tables) {
    const [schema, table] = qualified.split(".");
    const { rows } = await h.db.pool.query<{ column_name: string; data_type: string; is_nullable: "YES" | "NO" }>(
      `select column_name, data_type, is_nullable from information_schema.columns
        where table_schema = $1 and table_name = $2 order by ordinal_position`,
      [schema, table],
    );
    if (rows.length === 0) mismatches.push(`${qualified}: no such table in the migrated database`);
    for (const column of declared) {
      if (!rows.some((row) => row.column_name === column.name)) mismatches.push(`${qualified}.${column.name}: declared, not migrated`);
    }
    for (const row of rows) {
      const where = `${qualified}.${row.column_name} (${row.data_type}${row.is_nullable === "YES" ? ", nullable" : ""})`;
      const column = declared.find((c) => c.name === row.column_name);
      if (!column) {
        mismatches.push(`${where}: migrated, not declared`);
        continue;
      }
      if (column.nullable !== (row.is_nullable === "YES")) mismatches.push(`${where}: declared ${column.nullable ? "with" : "without"} | null`);
      const expected = TS_TYPE_OF[row.data_type];
      // Enumerations of text (state: "pending" | …) read as string; a jsonb column may hold any JSON shape.
      if (expected !== "unknown" && !column.type.split(" | ").every((part) => part === expected)) mismatches.push(`${where}: declared ${column.type}, reads as ${expected ?? "an unknown type"}`);
    }
  }
  assert.deepEqual(mismatches, []);
});
