/**
 * The rehearsal's job as Torque gives it: the environment, the .o/.e files,
 * the exit status and the verdict. The command line runs for real here, in a
 * login bash on the host with a temp home and workspace (what SSH runs in the
 * guest); the booted runs are rehearse.test.ts (one node, a failing job) and
 * vrdma.test.ts (two nodes, an mpirun job).
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { timed } from './helpers/timing.ts';
import { bootPlotProblem } from '../src/smoke/boot-plot.ts';
import { jobCommandLine, judgeJob, parseStatus, tail, torqueJob, type JobPlan } from '../src/rehearse/job.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'guestforge.js');
const tmp = await mkdtemp(join(tmpdir(), 'gf-job-'));
const t = timed(suite('rehearse job (Torque environment, streams, status)'));

const plan = (over: Partial<JobPlan> = {}): JobPlan => ({
  name: 'STDIN', clusterName: 'vtorque', nonce: 'a1b2c3d4e5f6', owner: 'jobuser', home: '/home/jobuser', workspace: '/workspace',
  nodeFile: '/home/jobuser/pbs_nodefile.a1b2c3d4e5f6', nodes: 2, slotsPerNode: 2, nodeFileWritten: true, ...over,
});

t('torqueJob: the id, the stream names and the environment pbs_mom gives a job', () => {
  const job = torqueJob(plan());
  assert.match(job.id, /^\d{5}\.vtorque$/);
  assert.is(job.id, `${job.seq}.vtorque`);
  assert.is(job.stdoutName, `STDIN.o${job.seq}`);
  assert.is(job.stderrName, `STDIN.e${job.seq}`);
  assert.is(job.env.PBS_JOBID, job.id);
  assert.is(job.env.PBS_NODEFILE, '/home/jobuser/pbs_nodefile.a1b2c3d4e5f6');
  assert.is(job.env.PBS_O_WORKDIR, '/home/jobuser');
  assert.is(job.env.PBS_NP, '4', 'one slot per vCPU of each node');
  assert.is(job.env.PBS_NUM_NODES, '2');
  assert.is(job.env.PBS_NUM_PPN, '2');
  assert.is(job.env.WORKSPACE, '/workspace');
  assert.is(job.env.PBS_O_SHELL, '/bin/bash');
  assert.is(job.env.PBS_O_QUEUE, 'batch');
  assert.is(job.nodeFileFromHostname, undefined, 'several nodes: the host wrote the node file');
  assert.is(torqueJob(plan({ nodes: 1, slotsPerNode: 3, nodeFileWritten: false })).nodeFileFromHostname, 3);
  assert.is.not(torqueJob(plan({ nonce: '000000aaaaaa' })).seq, job.seq, 'another rehearsal, another number');
});

t('the command line, run in a login bash: streams in the .o and .e files, the status in the workspace, the node file from hostname, quotes kept', async () => {
  const home = join(tmp, 'home');
  const ws = join(tmp, 'ws');
  await mkdir(home);
  await mkdir(ws);
  const job = torqueJob(plan({ home, workspace: ws, nodeFile: join(home, 'nodes'), nodes: 1, slotsPerNode: 2, nodeFileWritten: false }));
  const command = `echo "it's $PBS_JOBID np=$PBS_NP in $(pwd)"; cat "$PBS_NODEFILE"; echo 'to stderr' >&2; read -r x && echo "read $x"; exit 3`;
  const r = await execa('sh', ['-c', jobCommandLine(job, command, 60)], { env: { HOME: home }, reject: false, input: 'from stdin\n' });
  assert.is(r.exitCode, 3, 'the job\'s status is the line\'s');
  const out = await readFile(join(home, job.stdoutName), 'utf8');
  assert.is(out, `it's ${job.id} np=2 in ${home}\n${hostname()}\n${hostname()}\n`, 'no stdin: read fails, as a batch job\'s would');
  assert.is(await readFile(join(home, job.stderrName), 'utf8'), 'to stderr\n');
  assert.is(parseStatus(await readFile(join(ws, job.statusName), 'utf8')), 3);

  // At its time limit the job is ended in the guest, status 124, as Torque's walltime ends one.
  const started = Date.now();
  const late = await execa('sh', ['-c', jobCommandLine(job, 'echo started; sleep 30', 1)], { env: { HOME: home }, reject: false });
  assert.is(late.exitCode, 124);
  assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
  assert.is(parseStatus(await readFile(join(ws, job.statusName), 'utf8')), 124);
  assert.is(await readFile(join(home, job.stdoutName), 'utf8'), 'started\n');

  // A node file that cannot be written: the job does not run, the .e file says why, the status is 97.
  const lost = torqueJob(plan({ home, workspace: ws, nodeFile: join(home, 'no', 'such', 'nodes'), nodes: 1, slotsPerNode: 1, nodeFileWritten: false }));
  const r97 = await execa('sh', ['-c', jobCommandLine(lost, 'echo ran', 60)], { env: { HOME: home }, reject: false });
  assert.is(r97.exitCode, 97);
  assert.is(await readFile(join(home, lost.stdoutName), 'utf8'), '');
  assert.match(await readFile(join(home, lost.stderrName), 'utf8'), /guestforge: cannot write the node file .*\/no\/such\/nodes\n$/);
  assert.is(parseStatus(await readFile(join(ws, lost.statusName), 'utf8')), 97);
});

t('judgeJob: exit status, wall time, each stream\'s tail; expect on stdout, bounded', () => {
  const failed = judgeJob({ exitCode: 3, stdout: 'step 1\nstep 2\n', stderr: 'a\nb\nc\nd\ne\nf\nSegmentation fault\n', wallMs: 1234 });
  assert.is(failed.ok, false);
  assert.match(failed.detail, /^exit 3 after 1\.2 s\nstderr \(last lines\):\nc\nd\ne\nf\nSegmentation fault\nstdout \(last lines\):\nstep 1\nstep 2$/);
  const lost = judgeJob({ stdout: '', wallMs: 300_000, transport: 'no answer in 5m (timeouts.job)' });
  assert.is(lost.ok, false);
  assert.match(lost.detail, /^the job did not finish: no answer in 5m \(timeouts\.job\) \(after 300\.0 s\)\nstderr: empty\nstdout: empty$/);
  const ok = judgeJob({ exitCode: 0, stdout: 'HPL ... PASSED\nEnd of HPC Challenge tests.\n', wallMs: 60_000, expect: 'End of HPC Challenge tests' });
  assert.is(ok.ok, true, ok.detail);
  assert.match(ok.detail, /^exit 0 after 60\.0 s, stdout matches \/End of HPC Challenge tests\//);
  const onStderr = judgeJob({ exitCode: 0, stdout: 'nothing\n', stderr: 'End of HPC Challenge tests\n', wallMs: 1, expect: 'End of HPC' });
  assert.is(onStderr.ok, false, 'expect reads stdout, the .o file');
  assert.match(onStderr.detail, /but its stdout does not match \/End of HPC\//);
  const limit = judgeJob({ exitCode: 124, stdout: 'step 1\n', wallMs: 300_500, limit: '5m' });
  assert.match(limit.detail, /^ended at its time limit, 5m \(timeouts\.job; exit 124\) after 300\.5 s\n/);
  const hang = judgeJob({ exitCode: 0, stdout: `${'a'.repeat(40)}!`, wallMs: 1, expect: '(a+)+$' });
  assert.is(hang.ok, false);
  assert.match(hang.detail, /did not finish in 1 s/);
});

t('parseStatus and tail', () => {
  assert.is(parseStatus('0\n'), 0);
  assert.is(parseStatus('255'), 255);
  assert.is(parseStatus(undefined), undefined);
  assert.is(parseStatus('3\nrm -rf /\n'), undefined, 'only the number the wrapper writes');
  assert.is(tail('a\n\nb\nc\n', 2), 'b\nc');
  assert.is(tail(undefined, 3), '');
  // The guest's words reach the terminal: no escape sequence (title, clipboard, link) survives.
  assert.is(tail('ok\u001b]52;c;ZXZpbA==\u0007 \u001b[31mred\u001b[0m\u009b2J\n', 1), 'ok]52;c;ZXZpbA== [31mred[0m2J');
});

t('rehearse --job and --expect: an empty command or a broken regex is exit 2 before any VM', async () => {
  const image = join(tmp, 'none.qcow2');
  const empty = await execa('node', [cli, 'rehearse', image, '--job', ' '], { reject: false });
  assert.is(empty.exitCode, 2, empty.stderr);
  assert.match(empty.stderr, /rehearse: --job needs a command/);
  const broken = await execa('node', [cli, 'rehearse', image, '--job', 'true', '--expect', '('], { reject: false });
  assert.is(broken.exitCode, 2, broken.stderr);
  assert.match(broken.stderr, /rehearse: --expect is not a valid JavaScript regular expression: .*Unterminated group/);
});

t('the guest\'s boot plot is kept only when it is made of what systemd\'s plot is made of', async () => {
  const head = '<?xml version="1.0" standalone="no"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n<svg width="1200px" height="900px" version="1.1" xmlns="http://www.w3.org/2000/svg">\n';
  const body = '<!-- This file is a systemd-analyze SVG file. -->\n<defs>\n<style type="text/css">\n<![CDATA[\n rect { stroke-width: 1; stroke-opacity: 0; }\n rect.activating { fill: rgb(255,0,0); fill-opacity: 0.7; }\n text.left { font-family: Verdana, Helvetica; font-size: 14px; text-anchor: start; }\n]]>\n</style>\n</defs>\n'
    + '<rect class="background" width="100%" height="100%" />\n<text x="20" y="50">Startup finished in 5.1s (kernel) + 40.2s (userspace) = 45.3s</text>\n<g transform="translate(20.000,100)">\n  <rect class="box" x="0" y="0" width="1200.000" height="900.000" />\n  <text class="sec" x="100.000" y="-5.000" >1.0s</text>\n  <rect class="activating" x="1.0" y="0.0" width="2.0" height="19.0" />\n  <line class="sec5" x1="0.000" y1="0" x2="0.000" y2="400.000" />\n'
    + '  <text class="left" x="1.0" y="14.0">cloud-init-main.service (8.4s)</text>\n  <text class="left" x="2.0" y="34.0">systemd-fsck@dev-disk-by\\x2duuid-1234.service &amp; more</text>\n</g>\n';
  assert.is(bootPlotProblem(`${head}${body}</svg>\n`), undefined);
  // A real one, cut short by hand (Debian 13's systemd 257 in a rehearsal VM: comments, a <title> per unit, sizes in %).
  assert.is(bootPlotProblem(await readFile(join(root, 'test', 'fixtures', 'systemd-plot.svg'), 'utf8')), undefined);
  assert.is(bootPlotProblem(`<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">${body}</svg>`), undefined, 'no DOCTYPE is fine');
  for (const [bad, why] of [
    [`${head}<script>fetch('file:///etc/shadow')</script></svg>`, /holds "<script>"/],
    [`${head}<s:script xmlns:s="http://www.w3.org/2000/svg">alert(1)</s:script></svg>`, /holds "<s:script/],
    [`${head}<h:iframe xmlns:h="http://www.w3.org/1999/xhtml" /></svg>`, /holds "<h:iframe/],
    [`${head}<rect onload="alert(1)" /></svg>`, /holds "onload=\\"alert\(1\)\\"" in/],
    [`${head}<rect x="1" style="fill:url(http://x/)" /></svg>`, /holds "style=/],
    [`${head}<a href="http://x"><text>x</text></a></svg>`, /holds "<a href/],
    [`${head}<text><set attributeName="href" to="&#106;avascript:x"/></text></svg>`, /holds "&#"/],
    [`${head}<style>@import url(http://evil/);</style></svg>`, /style sheet with more than plain rules/],
    [`${head}<style>rect { fill: \\75 rl(http://x) }</style></svg>`, /style sheet with more than plain rules/],
    [`${head}<foreignObject><html/></foreignObject></svg>`, /holds "<foreignObject>"/],
    [`${head}<svg xmlns="http://evil/"></svg></svg>`, /holds "xmlns=\\"http:\/\/evil\/\\""/],
    [`${head}<![CDATA[<script>x</script>]]></svg>`, /CDATA section outside a style sheet/],
    ['<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<svg>&x;</svg>', /not an SVG document/],
    ['<?xml version="1.0"?>\n<!DOCTYPE svg SYSTEM "http://evil/x.dtd">\n<svg></svg>', /not an SVG document/],
    [`${head}<?xml-stylesheet href="http://evil/x.css"?></svg>`, /holds "<\?"/],
    ['Failed to connect to bus: No such file or directory', /not an SVG document/],
    [`${head}${body}`, /cut short/],
    [`${head}<text>\u009b2J\u007f</text><bad\u009b31m></svg>`, /holds "<bad31m>"/],
  ] as const) assert.match(bootPlotProblem(bad) ?? 'kept', why, bad.slice(-80));
  // What a hostile guest sends gzipped (4 MB packs into a few KB): every regex meets only bounded tags.
  const tail = '</svg>\n';
  for (const [bad, why] of [
    [`${head}<svg${' '.repeat(3_900_000)}>${tail}`, /tag longer than 4096/],
    [`${head}${'<style>'.repeat(500_000)}${tail}`, /more than 2 style sheets/],
    [`${head}${'<rect x="1"  '.repeat(400)}>${tail}`, /tag longer than 4096/],
    [`${head}<text>${' '.repeat(3_900_000)}</text>${tail}`, undefined],
    [`${head}<text${' '.repeat(4000)}>x</text>${tail}`, undefined],
    [`${head}<rect ${'x="1" '.repeat(600)}/>${tail}`, undefined],
  ] as const) {
    const started = Date.now();
    const problem = bootPlotProblem(bad);
    assert.ok(Date.now() - started < 1000, `${Date.now() - started} ms for ${bad.slice(200, 240)}`);
    if (why) assert.match(problem ?? 'kept', why);
    else assert.is(problem, undefined);
  }
});

t.after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

t.run();
