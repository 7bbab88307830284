/*
 * catmsg FILE: prints FILE to the console. The OSv native example's app:
 * OSv runs Linux position-independent executables as they are.
 * Rebuild: gcc -O2 -fPIE -pie -s -o catmsg catmsg.c
 */
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: catmsg FILE\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "r");
  if (!f) {
    perror(argv[1]);
    return 1;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
  fclose(f);
  return 0;
}
