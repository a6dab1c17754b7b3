/* Unit test of greet(); exits non-zero on the first failure. */
#include <stdio.h>
#include <string.h>

#include "greet.h"

static int failures = 0;

static void expect(const char *name, size_t size, const char *want,
                   size_t want_len) {
  char out[64];
  memset(out, 'x', sizeof(out));
  size_t len = greet(name, out, size);
  if (strcmp(out, want) != 0 || len != want_len) {
    fprintf(stderr, "FAIL greet(%s, %zu) = \"%s\" (%zu), want \"%s\" (%zu)\n",
            name ? name : "NULL", size, out, len, want, want_len);
    failures++;
  }
}

int main(void) {
  expect("kiln", 64, "Hello, kiln!", 12);
  expect(NULL, 64, "Hello, world!", 13);
  expect("", 64, "Hello, world!", 13);
  expect("kiln", 6, "Hello", 12); /* truncated, full length reported */
  if (failures == 0) printf("ok: greet\n");
  return failures == 0 ? 0 : 1;
}
