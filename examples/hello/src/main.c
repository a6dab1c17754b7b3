/* hello: prints a greeting, or serves it over HTTP.
 *   hello [NAME]          print "Hello, NAME!" (NAME: $GREETING_NAME, "world")
 *   hello --serve PORT    answer every HTTP request with the greeting */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "greet.h"

static int serve(int port, const char *greeting) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = htons((unsigned short)port);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
      bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(fd, 16)) {
    perror("hello: listen");
    return 1;
  }
  char response[512];
  int len = snprintf(response, sizeof(response),
                     "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n%s\n",
                     strlen(greeting) + 1, greeting);
  for (;;) {
    int client = accept(fd, NULL, NULL);
    if (client < 0) continue;
    char request[1024];
    (void)read(client, request, sizeof(request)); /* one read is enough */
    (void)write(client, response, (size_t)len);
    close(client);
  }
}

int main(int argc, char **argv) {
  const char *name = getenv("GREETING_NAME");
  char line[256];
  if (argc == 3 && strcmp(argv[1], "--serve") == 0) {
    greet(name, line, sizeof(line));
    return serve(atoi(argv[2]), line);
  }
  greet(argc > 1 ? argv[1] : name, line, sizeof(line));
  puts(line);
  return 0;
}
