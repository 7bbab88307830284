/** The disks and files a build makes: references, outputs, usage (leaf types: no project imports). */

export interface DiskRef {
  path: string;
  format: 'qcow2' | 'raw';
}

export interface OutputFile {
  path: string;
  format: string;
  bytes: number;
  sha256: string;
}

/** How much of a disk is data: its virtual size, and the bytes that are neither holes nor zeroes. */
export interface DiskUsage {
  virtualBytes: number;
  dataBytes: number;
}
