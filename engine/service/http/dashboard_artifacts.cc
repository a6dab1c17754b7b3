// The dashboard's task outputs: the list of a run's output artifacts, and
// an artifact's download (as stored: zstd-compressed tar; or plain tar),
// with the same roles as Kiln.ListArtifacts / Kiln.DownloadArtifact.
//
// A download streams straight from the store (bounded memory) and holds one
// of the live-stream slots. A blob found corrupt on the way aborts the
// response (the connection closes before the chunked body's end), so a
// client never takes a truncated or damaged archive for a whole one.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/service/http/dashboard_internal.h"

namespace kiln::service::http {
namespace {

nlohmann::json ArtifactJson(const ArtifactInfo& a) {
  nlohmann::json out = {{"task", a.task},
                        {"name", a.name},
                        {"tree_digest", a.tree.ToString()},
                        {"stored", a.stored}};
  if (a.stored) {
    out["archive_digest"] = a.archive.ToString();
    out["archive_size"] = a.archive.size();
    out["files"] = a.files;
    out["file_bytes"] = a.file_bytes;
    out["directories"] = a.directories;
    out["symlinks"] = a.symlinks;
  }
  return out;
}

// A file name part from a task or artifact name: anything but
// [A-Za-z0-9._-] becomes '_', so the header can carry no quote or newline.
std::string FileNamePart(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return out;
}

}  // namespace

void DashboardServer::Artifacts() {
  httplib::Server& svr = *server_;

  svr.Get(R"(/api/runs/([^/]+)/artifacts)", [this](const httplib::Request& req,
                                                   httplib::Response& res) {
    Caller caller;
    if (!Authenticate(req, &res, "ListArtifacts", false, &caller)) return;
    absl::StatusOr<std::vector<ArtifactInfo>> listed =
        engine_->ListArtifacts(req.matches[1], req.get_param_value("task"));
    if (!listed.ok()) return SendError(&res, listed.status());
    nlohmann::json artifacts = nlohmann::json::array();
    for (const ArtifactInfo& a : *listed) artifacts.push_back(ArtifactJson(a));
    SendJson(&res, nlohmann::json{{"artifacts", std::move(artifacts)}});
  });

  svr.Get(
      R"(/api/runs/([^/]+)/artifacts/([^/]+)/([^/]+))",
      [this](const httplib::Request& req, httplib::Response& res) {
        Caller caller;
        if (!Authenticate(req, &res, "DownloadArtifact", false, &caller)) {
          return;
        }
        const std::string format = req.has_param("format")
                                       ? req.get_param_value("format")
                                       : std::string("zstd");
        if (format != "zstd" && format != "tar") {
          return SendError(
              &res, absl::InvalidArgumentError(absl::StrCat(
                        "format must be zstd or tar, not \"", format, "\"")));
        }
        absl::StatusOr<ArtifactInfo> info = engine_->GetArtifact(
            req.matches[1], req.matches[2], req.matches[3]);
        if (!info.ok()) return SendError(&res, info.status());
        absl::StatusOr<std::unique_ptr<archive::ByteSource>> opened =
            engine_->OpenArtifact(*info, format == "tar");
        if (!opened.ok()) return SendError(&res, opened.status());
        if (!TakeStreamSlot(&res)) return;
        std::shared_ptr<archive::ByteSource> source = std::move(*opened);
        res.set_header("Cache-Control", "no-store");
        res.set_header("X-Kiln-Tree-Digest", info->tree.ToString());
        if (format == "zstd") {
          res.set_header("X-Kiln-Archive-Digest", info->archive.ToString());
        }
        res.set_header(
            "Content-Disposition",
            absl::StrCat("attachment; filename=\"", FileNamePart(info->task),
                         "-", FileNamePart(info->name),
                         format == "tar" ? ".tar" : ".tar.zst", "\""));
        res.set_chunked_content_provider(
            format == "tar" ? "application/x-tar" : "application/zstd",
            [this, source](size_t, httplib::DataSink& sink) {
              if (stopping_.load()) return false;
              absl::StatusOr<absl::string_view> chunk = source->Next();
              if (!chunk.ok()) return false;  // corrupt: abort, never end
              if (chunk->empty()) {
                sink.done();
                return true;
              }
              return sink.write(chunk->data(), chunk->size());
            },
            [this](bool) { ReleaseStreamSlot(); });
      });
}

}  // namespace kiln::service::http
