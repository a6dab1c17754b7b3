#include "engine/cli/client_connect.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "engine/cas/store_dir.h"
#include "engine/service/listen_address.h"

namespace kiln::cli {

void AddClientFlags(Args* args) {
  args->Flag("server", "unix:PATH or HOST:PORT (default: the store's socket)");
  args->Flag("store", "store directory (default $KILN_STORE or ~/.cache/kiln)");
  args->Flag("token-file", "file holding the bearer token");
  args->Flag("tls-ca", "PEM roots: connect with TLS");
}

absl::StatusOr<std::unique_ptr<service::KilnClient>> Connect(const Args& args) {
  service::ClientOptions options;
  options.server = args.Get("server");
  if (options.server.empty()) {
    absl::StatusOr<std::string> store = cas::ResolveStoreDir(args.Get("store"));
    if (!store.ok()) return store.status();
    options.server = absl::StrCat("unix:", service::DefaultSocketPath(*store));
  }
  if (args.Has("token-file")) {
    absl::StatusOr<std::string> token =
        service::ReadTokenFile(args.Get("token-file"));
    if (!token.ok()) return token.status();
    options.token = *token;
  }
  if (args.Has("tls-ca")) {
    std::ifstream in(args.Get("tls-ca"));
    if (!in) {
      return absl::NotFoundError(
          absl::StrCat("cannot read ", args.Get("tls-ca")));
    }
    std::stringstream pem;
    pem << in.rdbuf();
    options.tls_roots = pem.str();
  }
  return std::make_unique<service::KilnClient>(options);
}

absl::StatusOr<std::unique_ptr<Client>> ConnectClient(const Args& args) {
  absl::StatusOr<std::unique_ptr<service::KilnClient>> connection =
      Connect(args);
  if (!connection.ok()) return connection.status();
  // Only UploadSource needs the local store: its error waits until then.
  absl::StatusOr<std::string> store = cas::ResolveStoreDir(args.Get("store"));
  return NewRemoteClient(std::move(*connection), store.ok() ? *store : "");
}

}  // namespace kiln::cli
