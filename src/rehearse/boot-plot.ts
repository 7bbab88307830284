/**
 * The guest's `systemd-analyze plot`, kept beside a rehearsal's logs: where the
 * boot's time went, unit by unit, as an SVG an admin opens in a browser. The
 * guest wrote it, so it is kept only when it is the picture systemd draws:
 * no script, no link, no entity, no embedded document.
 */

/** The command run in the guest: the plot, cut at 4 MB (a guest could send more). */
export const bootPlotCommand = 'systemd-analyze plot | head -c 4000000';

/** Pure: why this text is not a plot to keep, or undefined. */
export function bootPlotProblem(svg: string): string | undefined {
  if (!/^<\?xml[^>]*\?>\s*(<!DOCTYPE svg [^>[]*>\s*)?<svg[\s>]/.test(svg)) return 'not an SVG document';
  if (!/<\/svg>\s*$/.test(svg)) return 'cut short (more than 4 MB, or the command failed half-way)';
  const found = /<script|<foreignObject|<iframe|<!ENTITY|\son[a-z]+\s*=|href\s*=|javascript:|<image/i.exec(svg);
  return found ? `holds "${found[0].trim()}", which systemd's plot never draws` : undefined;
}
