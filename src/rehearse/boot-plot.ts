/**
 * The guest's `systemd-analyze plot`, kept beside a rehearsal's logs: where the
 * boot's time went, unit by unit, as an SVG an admin opens in a browser (or a
 * CI server shows as an artifact). The guest wrote it, so it is kept only when
 * it is made of what systemd's plot is made of, by an allow-list: the XML
 * declaration and systemd's DOCTYPE, comments, the elements svg, g, rect,
 * line, text, defs and style with plain attributes, a style sheet of plain
 * rules (no url(), no @import, no escape), no character reference, other
 * entity or processing instruction. Anything else, however harmless it may be, is
 * refused with what it was.
 */

import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../exec/run.ts';
import { readUntrusted } from '../util/fs.ts';
import { tail } from './job.ts';
import { sshArgs } from './ssh.ts';
import type { NodeVm, Rehearsal } from './types.ts';

/** The command run in the guest: the plot, cut at 4 MB (a guest could send more). */
export const bootPlotCommand = 'systemd-analyze plot | head -c 4000000';

const doctype = '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">';
const elements = new Set(['svg', 'g', 'rect', 'line', 'text', 'title', 'defs', 'style']);
const svgNamespace = 'http://www.w3.org/2000/svg';

/** Pure: may this attribute be kept with this value. */
function attributeAllowed(name: string, value: string): boolean {
  switch (name) {
    case 'xmlns': return value === svgNamespace;
    case 'type': return value === 'text/css';
    case 'transform': return /^(translate|scale)\([\d.,\s-]+\)$/.test(value);
    case 'x': case 'y': case 'x1': case 'y1': case 'x2': case 'y2': case 'width': case 'height': case 'version':
      return /^-?[\d.]+(px|%)?$/.test(value);
    case 'class': return /^[\w -]*$/.test(value);
    default: return false;
  }
}

function shown(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}

/** Pure: why this text is not a plot to keep, or undefined. */
export function bootPlotProblem(svg: string): string | undefined {
  const head = new RegExp(`^<\\?xml version="1\\.0"( encoding="UTF-8")?( standalone="no")?\\?>\\s*(${doctype.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\s*)?(?=<svg[\\s>])`).exec(svg);
  if (!head) return 'not an SVG document as systemd writes one';
  const body = svg.slice(head[0].length);
  if (!/<\/svg>\s*$/.test(body)) return 'cut short (more than 4 MB, or the command failed half-way)';
  // Comments are inert (systemd writes one); a unit name's \x2d escape is text. Nothing else of XML's.
  const markup = /<\?|<!(?!\[CDATA\[|--)|&#|&(?!(amp|lt|gt|quot|apos);)/.exec(body);
  if (markup) return `holds ${shown(markup[0])}, which systemd's plot never writes`;
  // The style sheets: plain rules only.
  for (const [, css] of body.matchAll(/<style[^>]*>([\s\S]*?)<\/style>/g)) {
    const rules = (css ?? '').replace(/^\s*<!\[CDATA\[/, '').replace(/\]\]>\s*$/, '');
    if (!/^[\w\s.,:;{}()#%*>+"'/-]*$/.test(rules) || /url\s*\(|expression\s*\(|@/i.test(rules)) return `holds a style sheet with more than plain rules: ${shown(rules.trim())}`;
  }
  if (/<!\[CDATA\[/.test(body.replace(/<style[^>]*>\s*<!\[CDATA\[[\s\S]*?\]\]>\s*<\/style>/g, ''))) return 'holds a CDATA section outside a style sheet';
  // Every element, and every attribute of each.
  for (const [tag, name, attributes] of body.matchAll(/<\/?([^\s/>!]+)([^>]*)>/g)) {
    if (!elements.has(name ?? '')) return `holds ${shown(tag)}, which systemd's plot never writes`;
    let rest = attributes ?? '';
    for (const [pair, attribute, value] of rest.matchAll(/\s+([A-Za-z][\w.-]*)="([^"<>]*)"/g)) {
      if (!attributeAllowed(attribute ?? '', value ?? '')) return `holds ${shown(pair.trim())} in ${shown(tag)}, which systemd's plot never writes`;
    }
    rest = rest.replace(/\s+([A-Za-z][\w.-]*)="([^"<>]*)"/g, '').replace(/\s*\/?\s*$/, '');
    if (rest !== '') return `holds ${shown(tag)}, which systemd's plot never writes`;
  }
  return undefined;
}

/** A VM's plot beside the logs, when it is what systemd draws (read capped, written afresh); a warning otherwise. */
export async function keepBootPlot(r: Pick<Rehearsal, 'o' | 'log'>, n: NodeVm): Promise<void> {
  const file = join(r.o.logDir, `rehearse${n.spec ? `-${n.spec.name}` : ''}-boot.svg`);
  const raw = join(r.o.workDir, `boot-plot${n.spec ? `-${n.spec.name}` : ''}.svg`);
  await rm(file, { force: true });
  const plot = await run(sshArgs(n.target, bootPlotCommand), { allowFailure: true, timeoutMs: 120_000, stdoutFile: raw });
  const svg = await readUntrusted(raw, 4_000_000);
  await rm(raw, { force: true });
  const problem = plot.exitCode !== 0 ? `exit ${plot.exitCode}: ${tail(plot.stderr, 1)}` : svg === undefined ? 'nothing came back' : bootPlotProblem(svg);
  if (problem) r.log.warn(`rehearse: ${n.spec?.name ?? 'the VM'}'s boot plot not kept: ${problem}`);
  else await writeFile(file, svg!, { mode: 0o600, flag: 'wx' });
}
