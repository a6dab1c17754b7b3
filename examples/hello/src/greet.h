/* Builds the greeting the hello server answers with. */
#ifndef HELLO_GREET_H_
#define HELLO_GREET_H_

#include <stddef.h>

/* Writes "Hello, NAME!" (NAME defaults to "world" when NULL or empty) into
 * out, truncated to size-1 bytes. Returns the full length of the greeting. */
size_t greet(const char *name, char *out, size_t size);

#endif /* HELLO_GREET_H_ */
