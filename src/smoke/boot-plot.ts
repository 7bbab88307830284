/**
 * The guest's `systemd-analyze plot`, kept beside the smoke and rehearsal logs: where the
 * boot's time went, unit by unit, as an SVG an admin opens in a browser (or a CI server shows
 * as an artifact). The guest wrote it, so it is kept only when it is made of what systemd's plot
 * is made of, by an allow-list: the XML declaration and systemd's DOCTYPE, comments, the
 * elements svg, g, rect, line, text, defs and style with plain attributes, a style sheet of plain
 * rules (no url(), no @import, no escape), no character reference, other entity or processing
 * instruction. Anything else, however harmless it may be, is refused with what it was.
 */
import { gunzipSync } from 'node:zlib';
import { withoutControls } from '../util/text.ts';

/** The most of a plot that is read: systemd's plot of a batch VM's boot is a few hundred KB. */
export const bootPlotMaxBytes = 4_000_000;

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

/** A piece of the guest's text in a message: short, quoted, and no terminal control (C1 and DEL too). */
function shown(text: string): string {
  return JSON.stringify(withoutControls(text.length > 60 ? `${text.slice(0, 60)}…` : text));
}

/** systemd's tags are short and its plot has one style sheet: longer tags or more sheets are not its. */
const maxTagChars = 4096;
const maxStyleSheets = 2;

/**
 * Linear bounds, checked before any pattern: no tag longer than maxTagChars, every tag closed, at most
 * maxStyleSheets style sheets. The patterns below then never meet the long runs that make a regex
 * backtrack (a tag of spaces, thousands of `<style`), which a hostile guest could send gzipped.
 */
function boundsProblem(body: string): string | undefined {
  let styles = 0;
  for (let at = body.indexOf('<'); at !== -1; at = body.indexOf('<', at + 1)) {
    const end = body.indexOf('>', at);
    if (end === -1) return 'holds a tag that never closes';
    if (end - at > maxTagChars) return `holds a tag longer than ${maxTagChars} characters`;
    if (body.startsWith('<style', at) && (styles += 1) > maxStyleSheets) return `holds more than ${maxStyleSheets} style sheets`;
    at = end;
  }
  return undefined;
}

/** Pure: why this text is not a plot to keep, or undefined. */
export function bootPlotProblem(svg: string): string | undefined {
  const head = new RegExp(`^<\\?xml version="1\\.0"( encoding="UTF-8")?( standalone="no")?\\?>\\s*(${doctype.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\s*)?(?=<svg[\\s>])`).exec(svg);
  if (!head) return 'not an SVG document as systemd writes one';
  const body = svg.slice(head[0].length);
  if (!/<\/svg>\s*$/.test(body)) return `cut short (more than ${bootPlotMaxBytes} bytes, or the command failed half-way)`;
  const bounds = boundsProblem(body);
  if (bounds) return bounds;
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
    rest = rest.replace(/\s+([A-Za-z][\w.-]*)="([^"<>]*)"/g, '').trim();
    if (rest !== '' && rest !== '/') return `holds ${shown(tag)}, which systemd's plot never writes`;
  }
  return undefined;
}

/**
 * Pure: the plot a smoke VM sent on its console (GUESTFORGE-PLOT lines: gzip, base64, then "end"),
 * decoded and checked; or why it is not kept.
 */
export function plotFromConsole(chunks: readonly string[]): { svg: string } | { problem: string } {
  if (chunks.length === 0) return { problem: 'the guest sent none (no systemd-run, or the boot never finished)' };
  if (chunks.at(-1) === 'none') return { problem: 'the guest could not make it (systemd-analyze plot failed, or the boot did not finish within a minute)' };
  if (chunks.at(-1) !== 'end') return { problem: 'cut short: the VM stopped before the end line' };
  const text = chunks.slice(0, -1).join('');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return { problem: 'not base64' };
  let svg: string;
  try {
    svg = gunzipSync(Buffer.from(text, 'base64'), { maxOutputLength: bootPlotMaxBytes }).toString('utf8');
  } catch (error) {
    return { problem: `not a gzip stream of at most ${bootPlotMaxBytes} bytes (${(error as Error).message})` };
  }
  const problem = bootPlotProblem(svg);
  return problem ? { problem } : { svg };
}
