/**
 * The bench's boot chart: one SVG, two bars per image, to scale. The first bar
 * is the machine's floor (qemu -kernel into busybox, the image's own kernel);
 * the second the image's smoke boot split into firmware + GRUB, kernel and
 * userspace to the smoke result, with the rehearsal's job-ready and
 * cloud-init-done marked on the same axis (a separate boot of the same image,
 * as a cluster node boots it). The axis is in seconds, with the targets' floor
 * multiples marked (4× for the smoke result, 5× for job-ready): what an admin
 * deciding what to cut wants to see.
 */

export interface ChartImage {
  name: string;
  floorMs?: number;
  beforeKernelMs?: number;
  kernelMs?: number;
  userspaceMs?: number;
  jobReadyMs?: number;
  cloudInitDoneMs?: number;
}

const colours = { floor: '#9e9e9e', firmware: '#e0a030', kernel: '#4a90d9', userspace: '#5cb85c', jobReady: '#d9534f', cloudInit: '#7b4fa0' };

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Pure: the chart as an SVG document. */
export function bootChart(images: ChartImage[], title: string): string {
  const left = 190;
  const width = 760;
  const rowH = 22;
  const top = 60;
  const s = (ms: number) => ms / 1000;
  const longest = Math.max(10, ...images.flatMap((i) => [i.floorMs ?? 0, (i.beforeKernelMs ?? 0) + (i.kernelMs ?? 0) + (i.userspaceMs ?? 0), i.jobReadyMs ?? 0, i.cloudInitDoneMs ?? 0].map(s)));
  const axisMax = Math.ceil(longest / 20) * 20;
  const x = (seconds: number) => left + (seconds / axisMax) * width;
  const out: string[] = [];
  const gap = 52;
  const height = top + images.length * (rowH * 2 + gap) + 70;
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  // Room on the right for the words at the end of the longest bar.
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${left + width + 240}" height="${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="10" y="22" font-size="15" font-weight="bold">${esc(title)}</text>`);
  // The axis: a line every 20 s.
  const axisBottom = height - 62;
  for (let t = 0; t <= axisMax; t += 20) {
    out.push(`<line x1="${x(t).toFixed(1)}" y1="${top - 10}" x2="${x(t).toFixed(1)}" y2="${axisBottom}" stroke="#e6e6e6"/>`);
    out.push(`<text x="${x(t).toFixed(1)}" y="${axisBottom + 14}" text-anchor="middle" fill="#555">${t} s</text>`);
  }
  let y = top;
  for (const image of images) {
    out.push(`<text x="10" y="${y + 15}" font-weight="bold">${esc(image.name)}</text>`);
    if (image.floorMs !== undefined) {
      out.push(`<text x="${left - 8}" y="${y + rowH + 15}" text-anchor="end" fill="#555">floor</text>`);
      out.push(`<rect x="${left}" y="${y + rowH}" width="${(x(s(image.floorMs)) - left).toFixed(1)}" height="${rowH - 6}" fill="${colours.floor}"/>`);
      out.push(`<text x="${(x(s(image.floorMs)) + 4).toFixed(1)}" y="${y + rowH + 13}" fill="#333">${s(image.floorMs).toFixed(1)} s</text>`);
    }
    const bootY = y + rowH * 2;
    out.push(`<text x="${left - 8}" y="${bootY + 15}" text-anchor="end" fill="#555">boot</text>`);
    let at = 0;
    const times = (ms: number) => (image.floorMs ? ` (${(ms / image.floorMs).toFixed(1)}×)` : '');
    for (const [key, ms] of [['firmware', image.beforeKernelMs], ['kernel', image.kernelMs], ['userspace', image.userspaceMs]] as const) {
      if (ms === undefined) continue;
      out.push(`<rect x="${x(at).toFixed(1)}" y="${bootY}" width="${(x(at + s(ms)) - x(at)).toFixed(1)}" height="${rowH - 6}" fill="${colours[key]}"><title>${key}: ${s(ms).toFixed(1)} s${times(ms)}</title></rect>`);
      at += s(ms);
    }
    if (at > 0) out.push(`<text x="${(x(at) + 4).toFixed(1)}" y="${bootY + 13}" fill="#333">smoke result ${at.toFixed(1)} s${times(at * 1000)}</text>`);
    // Issue 34's targets on the same axis: the smoke result at 4× the floor, job-ready at 5×.
    if (image.floorMs !== undefined) {
      for (const [k, label] of [[4, 'smoke target'], [5, 'job-ready target']] as const) {
        const tx = x(k * s(image.floorMs));
        out.push(`<line x1="${tx.toFixed(1)}" y1="${y + rowH - 2}" x2="${tx.toFixed(1)}" y2="${bootY + rowH - 4}" stroke="#333" stroke-dasharray="3,3"/>`);
        out.push(`<text x="${(tx + 3).toFixed(1)}" y="${y + rowH - 4 - (k - 4) * 11}" font-size="10" fill="#333">${k}× floor: ${label}</text>`);
      }
    }
    // The rehearsal's marks, on the same axis.
    const marks = [['jobReady', image.jobReadyMs, 'job-ready'], ['cloudInit', image.cloudInitDoneMs, 'cloud-init done']] as const;
    for (const [i, [key, ms, label]] of marks.entries()) {
      if (ms === undefined) continue;
      const mx = x(s(ms));
      // Its words beside the mark, on the side with room.
      const anchor = mx > left + width * 0.6 ? 'end' : 'start';
      out.push(`<line x1="${mx.toFixed(1)}" y1="${y + rowH - 2}" x2="${mx.toFixed(1)}" y2="${bootY + rowH + 4 + i * 14}" stroke="${colours[key]}" stroke-width="2"/>`);
      out.push(`<text x="${(mx + (anchor === 'end' ? -4 : 4)).toFixed(1)}" y="${bootY + rowH + 14 + i * 14}" text-anchor="${anchor}" fill="${colours[key]}">${label} ${s(ms).toFixed(1)} s${times(ms)}</text>`);
    }
    y += rowH * 2 + gap;
  }
  // The legend.
  const legend = [['floor', 'floor: qemu -kernel into busybox'], ['firmware', 'firmware + GRUB'], ['kernel', 'kernel + initramfs'], ['userspace', 'userspace to the smoke result'], ['jobReady', 'rehearsal: job-ready'], ['cloudInit', 'rehearsal: cloud-init done']] as const;
  for (const [i, [key, label]] of legend.entries()) {
    const lx = 10 + (i % 3) * 300;
    const ly = height - 40 + Math.floor(i / 3) * 18;
    out.push(`<rect x="${lx}" y="${ly}" width="12" height="12" fill="${colours[key]}"/>`);
    out.push(`<text x="${lx + 16}" y="${ly + 10}">${label}</text>`);
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
