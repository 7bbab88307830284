#!/bin/sh
# Sample multi-node batch job, as a cluster user writes one: compile the MPI
# program into the shared workspace (every node sees it over NFS), then one
# rank per slot of the node file the batch system wrote.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
: "${PBS_NODEFILE:?the batch system sets PBS_NODEFILE}"
ws=${WORKSPACE:-/workspace}
dir=$(mktemp -d -p "$ws" mpi-job.XXXXXX)
# mpicc calls gcc; Debian's MPI packages bring the versioned compiler only (gcc-12 on 12, gcc-14 on 13).
OMPI_CC=${OMPI_CC:-$(command -v gcc || ls /usr/bin/gcc-[0-9]* 2>/dev/null | sort -V | tail -n 1)}
OMPI_CC=${OMPI_CC:-gcc}
export OMPI_CC
mpicc -O2 -o "$dir/hello" "$here/src/hello.c"
ranks=$(wc -l < "$PBS_NODEFILE")
# MPIRUN_ARGS: extra mpirun options (e.g. another transport), split on spaces.
# shellcheck disable=SC2086
mpirun -np "$ranks" --hostfile "$PBS_NODEFILE" ${MPIRUN_ARGS:-} "$dir/hello"
rm -rf "$dir"
