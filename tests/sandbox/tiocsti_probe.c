/* Tries to push a character into the input queue of a terminal (TIOCSTI)
 * through fds 0-2 and /dev/tty. Prints one line per attempt; exits 0 only
 * when every attempt failed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(void) {
  int injected = 0;
  char c = 'x';
  for (int fd = 0; fd <= 2; ++fd) {
    if (ioctl(fd, TIOCSTI, &c) == 0) {
      printf("fd %d: injected\n", fd);
      injected = 1;
    } else {
      printf("fd %d: %s\n", fd, strerror(errno));
    }
  }
  int tty = open("/dev/tty", O_RDWR);
  if (tty < 0) {
    printf("/dev/tty: %s\n", strerror(errno));
  } else if (ioctl(tty, TIOCSTI, &c) == 0) {
    printf("/dev/tty: injected\n");
    injected = 1;
  } else {
    printf("/dev/tty: %s\n", strerror(errno));
  }
  return injected;
}
