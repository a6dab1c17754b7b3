#include "engine/service/listen_address.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace kiln::service {

std::string ListenAddress::GrpcTarget() const {
  if (unix_socket) return absl::StrCat("unix:", path);
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

bool IsLoopbackHost(absl::string_view host) {
  if (host == "localhost") return true;
  std::string h(host);
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return false;
}

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text) {
  ListenAddress out;
  if (absl::ConsumePrefix(&text, "unix:")) {
    if (text.empty()) {
      return absl::InvalidArgumentError("unix: needs a socket path");
    }
    out.unix_socket = true;
    out.path = std::string(text);
    return out;
  }
  absl::string_view host, port;
  if (absl::StartsWith(text, "[")) {
    size_t close = text.find("]:");
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad address \"", text, "\" (want [V6]:PORT)"));
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos || text.find(':') != colon) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad address \"", text, "\" (want unix:PATH or HOST:PORT)"));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty() || !absl::SimpleAtoi(port, &out.port) || out.port < 0 ||
      out.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad address \"", text, "\" (want HOST:PORT)"));
  }
  out.host = std::string(host);
  out.loopback = IsLoopbackHost(host);
  return out;
}

absl::Status CheckListenPolicy(const ListenAddress& address, bool have_tokens,
                               bool have_tls) {
  if (address.unix_socket) return absl::OkStatus();
  if (!have_tokens) {
    return absl::FailedPreconditionError(
        "listening on TCP requires --token-file");
  }
  if (!address.loopback && !have_tls) {
    return absl::FailedPreconditionError(
        absl::StrCat("refusing to listen on non-loopback ", address.host,
                     " without TLS (--tls-cert and --tls-key)"));
  }
  return absl::OkStatus();
}

std::string DefaultSocketPath(absl::string_view store_dir) {
  return absl::StrCat(store_dir, "/kiln.sock");
}

absl::Status CheckTlsKeyFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": TLS key is accessible by group or others (chmod 600)"));
  }
  return absl::OkStatus();
}

}  // namespace kiln::service
