#include "engine/oci/registry/testing/fake_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kiln::oci::registry::testing {
namespace {

constexpr size_t kMaxRequestBytes = 64 << 20;

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 302:
      return "Found";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 416:
      return "Range Not Satisfiable";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += n;
  }
  return true;
}

}  // namespace

std::string FakeRequest::Header(const std::string& lowercase_name) const {
  auto it = headers.find(lowercase_name);
  return it == headers.end() ? "" : it->second;
}

absl::StatusOr<std::unique_ptr<FakeHttpServer>> FakeHttpServer::Start(
    Handler handler) {
  std::unique_ptr<FakeHttpServer> s(new FakeHttpServer());
  s->handler_ = std::move(handler);
  s->listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s->listen_fd_ < 0 || pipe2(s->wake_, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  }
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) !=
          0 ||
      listen(s->listen_fd_, 16) != 0 ||
      getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) !=
          0) {
    return absl::InternalError(absl::StrCat("bind/listen: ", strerror(errno)));
  }
  s->port_ = ntohs(addr.sin_port);
  s->thread_ = std::thread([p = s.get()] { p->Serve(); });
  return s;
}

FakeHttpServer::~FakeHttpServer() {
  if (wake_[1] >= 0) {
    char c = 'x';
    (void)!write(wake_[1], &c, 1);
  }
  if (thread_.joinable()) thread_.join();
  for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) close(fd);
  }
}

std::string FakeHttpServer::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

std::vector<FakeRequest> FakeHttpServer::Requests() {
  MutexLock lock(&mu_);
  return requests_;
}

void FakeHttpServer::Serve() {
  while (true) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    int r = poll(p, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (p[1].revents & POLLIN)) return;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    HandleConnection(fd);
    close(fd);
  }
}

void FakeHttpServer::HandleConnection(int fd) {
  // Read until the end of the headers, then Content-Length bytes of body.
  std::string data;
  size_t header_end = std::string::npos;
  size_t need = 0;
  char buf[65536];
  while (true) {
    if (header_end != std::string::npos && data.size() >= header_end + need) {
      break;
    }
    pollfd p[2] = {{fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    int r = poll(p, 2, 30000);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || (p[1].revents & POLLIN)) return;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.append(buf, n);
    if (data.size() > kMaxRequestBytes) return;
    if (header_end == std::string::npos) {
      size_t at = data.find("\r\n\r\n");
      if (at == std::string::npos) continue;
      header_end = at + 4;
      FakeRequest probe;
      for (absl::string_view line :
           absl::StrSplit(absl::string_view(data).substr(0, at), "\r\n")) {
        size_t colon = line.find(':');
        if (colon == absl::string_view::npos) continue;
        if (absl::AsciiStrToLower(line.substr(0, colon)) == "content-length") {
          uint64_t v = 0;
          if (absl::SimpleAtoi(
                  absl::StripAsciiWhitespace(line.substr(colon + 1)), &v)) {
            need = v;
          }
        }
      }
    }
  }
  FakeRequest req;
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::string_view(data).substr(0, header_end - 4), "\r\n");
  std::vector<absl::string_view> first = absl::StrSplit(lines[0], ' ');
  if (first.size() < 2) return;
  req.method = std::string(first[0]);
  req.target = std::string(first[1]);
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) continue;
    req.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  req.body = data.substr(header_end, need);
  {
    MutexLock lock(&mu_);
    requests_.push_back(req);
  }
  FakeResponse resp = handler_(req);
  if (resp.hang) {
    pollfd p = {wake_[0], POLLIN, 0};
    while (poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
    return;
  }
  std::string out =
      absl::StrCat("HTTP/1.1 ", resp.status, " ", Reason(resp.status), "\r\n");
  int64_t length = resp.content_length >= 0
                       ? resp.content_length
                       : static_cast<int64_t>(resp.body.size());
  absl::StrAppend(&out, "Content-Length: ", length, "\r\n",
                  "Connection: close\r\n");
  for (const auto& [k, v] : resp.headers) {
    absl::StrAppend(&out, k, ": ", v, "\r\n");
  }
  absl::StrAppend(&out, "\r\n");
  if (req.method != "HEAD") out += resp.body;
  SendAll(fd, out);
}

}  // namespace kiln::oci::registry::testing
