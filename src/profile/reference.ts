/** The README's profile reference, generated from the JSON Schema (itself from zod). */
type Node = { type?: string | string[]; description?: string; default?: unknown; enum?: unknown[]; properties?: Record<string, Node>; items?: Node; anyOf?: Node[]; oneOf?: Node[]; const?: unknown; required?: string[] };

function typeOf(n: Node): string {
  if (n.enum) return n.enum.map((v) => `\`${String(v)}\``).join(' \\| ');
  if (n.const !== undefined) return `\`${String(n.const)}\``;
  if (n.anyOf ?? n.oneOf) return (n.anyOf ?? n.oneOf)!.map(typeOf).join(' \\| ');
  if (n.type === 'array') return `list of ${n.items ? typeOf(n.items) : 'any'}`;
  return Array.isArray(n.type) ? n.type.join(' \\| ') : (n.type ?? 'any');
}

export function renderReference(schema: Node): string {
  const rows: string[] = ['| field | type | default | description |', '| --- | --- | --- | --- |'];
  const walk = (node: Node, prefix: string) => {
    const variants = node.oneOf ?? node.anyOf;
    if (!node.properties && variants?.some((v) => v.properties)) {
      for (const v of variants) walk(v, prefix);
      return;
    }
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      const name = `${prefix}${key}`;
      const def = child.default === undefined ? '' : `\`${JSON.stringify(child.default)}\``;
      const row = `| \`${name}\` | ${typeOf(child)} | ${def} | ${(child.description ?? '').replace(/\|/g, '\\|')} |`;
      if (!rows.includes(row)) rows.push(row);
      if (child.properties || (child.oneOf ?? child.anyOf)?.some((v) => v.properties)) walk(child, `${name}.`);
      if (child.items?.properties) walk(child.items, `${name}[].`);
    }
  };
  walk(schema, '');
  return `${rows.join('\n')}\n`;
}
