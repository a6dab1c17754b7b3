// A real registry for tests: Debian's docker-registry on 127.0.0.1 with a
// port the kernel picks (it logs the address it listens on), a private
// temporary storage directory, and — optionally — htpasswd basic auth.
// Stopped by its PID (SIGTERM, then SIGKILL) and cleaned up on destruction;
// it also dies with the test process (PR_SET_PDEATHSIG).
//
// Usage:
//   auto server = RegistryServer::Start();
//   ASSERT_TRUE(server.ok()) << server.status();
//   std::string ref = (*server)->address() + "/team/app:1";
#ifndef KILN_ENGINE_OCI_REGISTRY_TESTING_REGISTRY_FIXTURE_H_
#define KILN_ENGINE_OCI_REGISTRY_TESTING_REGISTRY_FIXTURE_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/mutex.h"
#include "engine/oci/registry/testing/subprocess.h"

namespace kiln::oci::registry::testing {

struct RegistryServerOptions {
  // When set, the registry requires basic auth with this user (htpasswd -B).
  std::string username;
  std::string password;
  // When set, the registry serves HTTPS with this PEM certificate and key.
  std::string tls_certificate;
  std::string tls_key;
  absl::Duration start_timeout = absl::Seconds(30);
};

class RegistryServer {
 public:
  static absl::StatusOr<std::unique_ptr<RegistryServer>> Start(
      RegistryServerOptions options = {});
  ~RegistryServer();
  RegistryServer(const RegistryServer&) = delete;
  RegistryServer& operator=(const RegistryServer&) = delete;

  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }
  // The registry's storage root (rootdirectory).
  std::string storage_dir() const { return dir_.path() + "/storage"; }
  // A scratch directory owned by the fixture, removed with it.
  const std::string& scratch_dir() const { return dir_.path(); }
  // Everything the registry logged so far (its access log included).
  std::string Log();

 private:
  RegistryServer() = default;
  void Drain(int fd);

  TempDir dir_;
  pid_t pid_ = -1;
  std::string address_;
  std::thread drainer_;
  Mutex mu_;
  std::string log_ ABSL_GUARDED_BY(mu_);
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kiln::oci::registry::testing

#endif  // KILN_ENGINE_OCI_REGISTRY_TESTING_REGISTRY_FIXTURE_H_
