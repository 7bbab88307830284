/**
 * RDMA verbs between the first two VMs of a rehearsal: ib_send_bw over the rxe devices the
 * guests put on their private NICs. The guests name their devices in GUESTFORGE-DATA lines
 * (fields, not the check's words); only a plain name reaches the command line.
 */
import type { RunResult } from '../exec/run.ts';
import { tail } from './job.ts';
import { vmsGone } from './node-vm.ts';
import { ssh } from './ssh.ts';
import type { NodeVm, Rehearsal } from './types.ts';

/** The result line of ib_send_bw's client ("65536 200 33.21 31.02 0.000496"), or undefined. */
export function ibSendBwLine(output: string): string | undefined {
  return output.split('\n').filter((l) => /^ *\d+ +\d+ +[\d.]+ +[\d.]+/.test(l)).pop()?.trim().replace(/\s+/g, ' ');
}

/** Pure: the rxe device a VM's guest named for its private NIC, when it is a plain name. */
export function rdmaDeviceOf(n: Pick<NodeVm, 'data'>): string | undefined {
  const device = n.data.get('vrdma.rxe-private')?.device;
  return device !== undefined && /^[\w.-]{1,64}$/.test(device) ? device : undefined;
}

/**
 * Messages of 64 KiB sent: 12.5 MiB, as many as the smoke VM's loopback sends
 * (cloud-init/smoke-checks.sh). Soft-RoCE under TCG moves 3-5 MB/s here, so the
 * 1,000 of before took 15-20 s of every two-node rehearsal for the same verdict.
 */
const iterations = 200;

/** ib_send_bw from the first VM to the second: the vrdma.between-vms check. The two devices when it could run. */
export async function checkRdmaBetweenVms(r: Rehearsal): Promise<[string, string] | undefined> {
  const pair = r.nodes.slice(0, 2);
  const rxe = pair.map((n) => r.checks.find((c) => c.id === `${n.prefix}vrdma.rxe-private`));
  if (rxe.every((c) => c === undefined)) {
    if (r.o.requireVrdma) r.add('vrdma.between-vms', false, 'the image has no vRDMA userspace (rdma, ib_send_bw): build it with vrdma.enabled');
    return undefined;
  }
  const [dev1, dev2] = pair.map(rdmaDeviceOf);
  if (rxe.some((c) => c?.status !== 'pass') || !dev1 || !dev2) {
    const down = pair.filter((n, i) => rxe[i]?.status !== 'pass' || !rdmaDeviceOf(n)).map((n) => n.spec!.name);
    r.add('vrdma.between-vms', false, `not run: rxe on the private NIC is not ACTIVE, or its device not named, on ${down.join(' and ') || 'both'}`);
    return undefined;
  }
  const [a, b] = pair as [NodeVm, NodeVm];
  r.o.step?.update(`ib_send_bw ${a.spec!.name} → ${b.spec!.name}`);
  // ssh's own failure (exit 255: the handshake timed out on a loaded host, the command never ran) is no verdict on RDMA:
  // the side that failed so is asked again, as is a client whose server does not listen yet.
  const startServer = () => ssh(b.target, `timeout 120 ib_send_bw -d ${dev2} -F -n ${iterations}`, 150_000);
  let server = startServer();
  let served: RunResult | undefined;
  let generation = 0;
  const watch = (p: Promise<RunResult>, g: number) => void p.then((res) => { if (g === generation) served = res; });
  watch(server, generation);
  let client: RunResult;
  let attempt = 0;
  let again: boolean;
  do {
    await new Promise((resolve) => setTimeout(resolve, 3000));
    if (served && served.exitCode === 255 && !`${served.stdout}${served.stderr}`.includes('ib_send_bw')) {
      generation += 1;
      served = undefined;
      server = startServer();
      watch(server, generation);
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
    client = await ssh(a.target, `timeout 60 ib_send_bw -d ${dev1} -F -n ${iterations} ${b.spec!.address}`, 90_000);
    attempt += 1;
    const notListening = served === undefined && /Couldn't connect|Unable to open file descriptor for socket connection/.test(`${client.stdout}${client.stderr}`);
    again = notListening || (client.exitCode === 255 && !`${client.stdout}`.includes('#bytes'));
  } while (attempt < 8 && again);
  const finalServed = await server;
  const line = ibSendBwLine(client.stdout);
  r.report.rdmaBetweenVms = line;
  const ok = client.exitCode === 0 && finalServed.exitCode === 0 && line !== undefined;
  r.add('vrdma.between-vms', ok, ok
    ? `ib_send_bw ${a.spec!.name} (${dev1}) → ${b.spec!.name} (${dev2}, ${b.spec!.address}): #bytes #iters BWpeak BWavg[MB/s] MsgRate = ${line}`
    : `ib_send_bw failed (client exit ${client.exitCode}, server exit ${finalServed.exitCode}, ${attempt} attempt${attempt > 1 ? 's' : ''}): ${tail(`${client.stdout}\n${client.stderr}\n${finalServed.stdout}\n${finalServed.stderr}`, 4).replaceAll('\n', ' | ') || 'no output'}${await vmsGone(pair)}`);
  return [dev1, dev2];
}
