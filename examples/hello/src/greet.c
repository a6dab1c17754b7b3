#include "greet.h"

#include <stdio.h>

size_t greet(const char *name, char *out, size_t size) {
  if (name == NULL || name[0] == '\0') name = "world";
  int n = snprintf(out, size, "Hello, %s!", name);
  return n < 0 ? 0 : (size_t)n;
}
