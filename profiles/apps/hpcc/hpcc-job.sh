#!/bin/sh
# A real MPI application as a batch job: the HPC Challenge benchmark (Debian's
# hpcc package: HPL, DGEMM, STREAM, PTRANS, RandomAccess, FFT and the
# latency/bandwidth rings) across every slot of the node file Torque wrote.
# Its input comes from the apps volume, its results go to the NFS workspace,
# and the summary lines go to stdout (the job's .o file).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
: "${PBS_NODEFILE:?the batch system sets PBS_NODEFILE}"
ranks=$(wc -l < "$PBS_NODEFILE")
run="${WORKSPACE:-/workspace}/hpcc.${PBS_JOBID:-$$}"
mkdir -p "$run"
cd "$run"
# One row of ranks (P=1, Q=ranks): every rank takes part in HPL whatever the node count.
sed "s/^RANKS /$ranks /" "$here/share/hpccinf.txt" > hpccinf.txt
echo "hpcc: $ranks ranks on $(sort -u "$PBS_NODEFILE" | tr '\n' ' ')in $run"
mpirun -np "$ranks" --hostfile "$PBS_NODEFILE" hpcc
# hpcc writes hpccoutf.txt: HPL's residual check, the summary, and its last words.
grep -E 'PASSED|FAILED' hpccoutf.txt || true
if grep -q FAILED hpccoutf.txt; then echo "hpcc: a residual check FAILED (see $run/hpccoutf.txt)" >&2; exit 1; fi
grep -E '^(CommWorldProcs|HPL_N|HPL_Tflops|StarSTREAM_Triad|MPIRandomAccess_GUPs|MPIFFT_Gflops|RandomlyOrderedRingBandwidth_GBytes)=' hpccoutf.txt || true
grep -F 'End of HPC Challenge tests.' hpccoutf.txt
