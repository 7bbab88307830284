/** PE files in tests: a signed one with its Authenticode signature cut off, as `sbattach --remove` leaves it. */

/** The certificate table's entry (data directory 4) of a PE32+ file: where it sits in the header, and its file offset and size. */
function certificateEntry(pe: Buffer): { at: number; offset: number; size: number } {
  if (pe.readUInt16LE(0) !== 0x5a4d) throw new Error('not a PE file (no MZ)');
  const header = pe.readUInt32LE(0x3c);
  if (pe.readUInt32LE(header) !== 0x4550) throw new Error('not a PE file (no PE signature)');
  const optional = header + 24;
  if (pe.readUInt16LE(optional) !== 0x20b) throw new Error('not a PE32+ file');
  const at = optional + 112 + 4 * 8;
  return { at, offset: pe.readUInt32LE(at), size: pe.readUInt32LE(at + 4) };
}

/** The same PE without its signature: the table cut from the end, its entry zeroed. Throws on an unsigned file. */
export function unsignPe(signed: Buffer): Buffer {
  const { at, offset, size } = certificateEntry(signed);
  if (size === 0 || offset === 0) throw new Error('the file carries no signature');
  const unsigned = Buffer.from(signed.subarray(0, offset));
  unsigned.writeUInt32LE(0, at);
  unsigned.writeUInt32LE(0, at + 4);
  return unsigned;
}
