// Where `kiln serve` listens, and the policy for it: a unix socket (access
// governed by the socket file's owner-only permissions) or HOST:PORT over
// TCP, which requires bearer tokens, and TLS unless HOST is loopback.
//
// Thread-safe (pure functions).
#ifndef KILN_ENGINE_SERVICE_LISTEN_ADDRESS_H_
#define KILN_ENGINE_SERVICE_LISTEN_ADDRESS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kiln::service {

struct ListenAddress {
  bool unix_socket = false;
  std::string path;  // unix socket path
  std::string host;  // TCP host, without brackets
  int port = 0;      // TCP port (0: pick one)
  bool loopback = false;

  // The gRPC target: "unix:PATH", "HOST:PORT" or "[V6]:PORT".
  std::string GrpcTarget() const;
};

// Parses "unix:PATH" or "HOST:PORT" / "[V6HOST]:PORT". InvalidArgument if
// malformed.
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text);

// True for localhost, 127.0.0.0/8 and ::1.
bool IsLoopbackHost(absl::string_view host);

// The listening policy: TCP needs a token file; a non-loopback host needs
// TLS. FailedPrecondition naming the missing flag otherwise.
absl::Status CheckListenPolicy(const ListenAddress& address, bool have_tokens,
                               bool have_tls);

// A TLS private key must be as private as the token file (auth.h):
// FailedPrecondition if group or others may access it, NotFound if absent.
absl::Status CheckTlsKeyFile(const std::string& path);

// The default socket of a store: "<store_dir>/kiln.sock".
std::string DefaultSocketPath(absl::string_view store_dir);

}  // namespace kiln::service

#endif  // KILN_ENGINE_SERVICE_LISTEN_ADDRESS_H_
