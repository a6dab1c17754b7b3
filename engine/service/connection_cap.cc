#include "engine/service/connection_cap.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "grpcpp/server_posix.h"

namespace kiln::service {
namespace {

absl::Status Errno(int err, const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", strerror(err)));
}

int64_t MonotonicSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec;
}

int BoundPort(int fd) {
  sockaddr_storage addr;
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return 0;
  }
  if (addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<CappedAcceptor>> CappedAcceptor::Listen(
    const ListenAddress& address, int max_connections) {
  if (max_connections < 1) {
    return absl::InvalidArgumentError("the connection limit must be positive");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string service = std::to_string(address.port);
  int rc = getaddrinfo(address.host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve ", address.host, ": ", gai_strerror(rc)));
  }
  std::vector<int> listeners;
  int port = address.port;
  absl::Status first_error;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    // Once a port is picked, every address of the host gets the same one.
    if (port != 0) {
      if (ai->ai_family == AF_INET) {
        reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_port = htons(port);
      } else if (ai->ai_family == AF_INET6) {
        reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_port = htons(port);
      }
    }
    int fd =
        socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
      if (first_error.ok()) {
        first_error = Errno(
            errno, absl::StrCat("cannot listen on ", address.GrpcTarget()));
      }
      close(fd);
      continue;
    }
    if (port == 0) port = BoundPort(fd);
    listeners.push_back(fd);
  }
  freeaddrinfo(found);
  if (listeners.empty()) {
    return first_error.ok() ? absl::UnavailableError(absl::StrCat(
                                  "cannot listen on ", address.GrpcTarget()))
                            : first_error;
  }
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    int err = errno;
    for (int fd : listeners) close(fd);
    return Errno(err, "pipe");
  }
  return std::unique_ptr<CappedAcceptor>(new CappedAcceptor(
      std::move(listeners), port, max_connections, wake[0], wake[1]));
}

CappedAcceptor::CappedAcceptor(std::vector<int> listeners, int port,
                               int max_connections, int wake_read,
                               int wake_write)
    : listeners_(std::move(listeners)),
      port_(port),
      max_connections_(max_connections),
      wake_read_(wake_read),
      wake_write_(wake_write) {}

CappedAcceptor::~CappedAcceptor() {
  Stop();
  close(wake_read_);
  close(wake_write_);
}

void CappedAcceptor::Start(grpc::Server* server) {
  server_ = server;
  thread_ = std::thread([this] { Loop(); });
}

void CappedAcceptor::Stop() {
  if (stopped_) return;
  stopped_ = true;
  char c = 0;
  // A full pipe already wakes the loop: the result does not matter.
  ssize_t woke = write(wake_write_, &c, 1);
  (void)woke;
  if (thread_.joinable()) thread_.join();
  for (int fd : listeners_) close(fd);
}

void CappedAcceptor::Loop() {
  std::vector<pollfd> fds;
  for (int fd : listeners_) fds.push_back({fd, POLLIN, 0});
  fds.push_back({wake_read_, POLLIN, 0});
  while (true) {
    for (pollfd& p : fds) p.revents = 0;
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "kiln serve: poll on the listener failed: %s\n",
                   strerror(errno));
      return;
    }
    if (fds.back().revents != 0) return;
    for (size_t i = 0; i + 1 < fds.size(); ++i) {
      if (fds[i].revents != 0) Accept(fds[i].fd);
    }
  }
}

void CappedAcceptor::Accept(int listener) {
  while (true) {
    int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: wait a little rather than spin on the
        // pending connection.
        int64_t now = MonotonicSeconds();
        if (now - last_warning_ >= 60) {
          last_warning_ = now;
          std::fprintf(stderr,
                       "kiln serve: out of file descriptors; connections "
                       "wait\n");
        }
        poll(nullptr, 0, 100);
      }
      return;  // EAGAIN, or retried at the next poll
    }
    Prune();
    if (static_cast<int>(handed_.size()) >= max_connections_) {
      close(fd);
      ++refused_;
      int64_t now = MonotonicSeconds();
      if (now - last_warning_ >= 60) {
        last_warning_ = now;
        std::fprintf(stderr,
                     "kiln serve: %d connections open (--max-connections); "
                     "refusing new ones\n",
                     max_connections_);
      }
      continue;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    handed_.push_back({fd, st.st_dev, st.st_ino});
    open_.store(static_cast<int>(handed_.size()));
    grpc::AddInsecureChannelFromFd(server_, fd);
  }
}

void CappedAcceptor::Prune() {
  size_t kept = 0;
  for (const Handed& h : handed_) {
    struct stat st;
    // Still the same socket at that descriptor: gRPC holds the connection.
    // Once gRPC closes it, the number is free or names another file.
    if (fstat(h.fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == h.dev &&
        st.st_ino == h.ino) {
      handed_[kept++] = h;
    }
  }
  handed_.resize(kept);
  open_.store(static_cast<int>(kept));
}

}  // namespace kiln::service
