// Connecting the client verbs to a `kiln serve`: the shared flags and the
// connection they describe.
#ifndef KILN_ENGINE_CLI_CLIENT_CONNECT_H_
#define KILN_ENGINE_CLI_CLIENT_CONNECT_H_

#include <memory>

#include "absl/status/statusor.h"
#include "engine/cli/args.h"
#include "engine/cli/kiln_client.h"
#include "engine/service/client.h"

namespace kiln::cli {

// --server (unix:PATH or HOST:PORT; default: the store's socket), --store,
// --token-file, --tls-ca.
void AddClientFlags(Args* args);

absl::StatusOr<std::unique_ptr<service::KilnClient>> Connect(const Args& args);

// Connect, as a cli::Client (kiln_client.h) whose UploadSource stashes in
// the store of --store / $KILN_STORE / ~/.cache/kiln.
absl::StatusOr<std::unique_ptr<Client>> ConnectClient(const Args& args);

}  // namespace kiln::cli

#endif  // KILN_ENGINE_CLI_CLIENT_CONNECT_H_
