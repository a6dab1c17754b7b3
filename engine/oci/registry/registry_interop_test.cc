// The registry client against a real registry (Debian's docker-registry on
// loopback), with skopeo and umoci as the independent clients: kiln pulls
// what skopeo pushed, skopeo and umoci read what kiln pushed; HEAD-skip,
// cross-repository mounts and chunked uploads are seen in the registry's
// access log; basic auth with htpasswd.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/cas/digest.h"
#include "engine/oci/registry/push.h"
#include "engine/oci/registry/registry.h"
#include "engine/oci/registry/testing/layout_dir.h"
#include "engine/oci/registry/testing/registry_fixture.h"
#include "engine/oci/registry/testing/subprocess.h"
#include "engine/oci/source.h"
#include "engine/oci/spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kiln::oci::registry {
namespace {

using testing::CommandResult;
using ::testing::HasSubstr;
using testing::LayoutDir;
using ::testing::Not;
using testing::RegistryServer;
using testing::RegistryServerOptions;
using testing::RunCommand;
using testing::TempDir;

std::string ReadFile(const std::string& path) {
  return testing::ReadWholeFile(path);
}

void WriteFile(const std::string& path, const std::string& bytes) {
  ASSERT_TRUE(testing::WriteWholeFile(path, bytes)) << path;
}

int CountOf(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// Blobs from memory.
class MemoryBlobs : public BlobProvider {
 public:
  void Add(const std::string& bytes) {
    blobs_[cas::Digest::Of(bytes).ToString()] = bytes;
  }
  absl::StatusOr<int> OpenBlob(const Descriptor& blob) override {
    auto it = blobs_.find(blob.digest);
    if (it == blobs_.end()) return absl::NotFoundError(blob.digest);
    int fd = memfd_create("blob", MFD_CLOEXEC);
    if (write(fd, it->second.data(), it->second.size()) !=
        static_cast<ssize_t>(it->second.size())) {
      close(fd);
      return absl::InternalError("write");
    }
    ++opened_;
    return fd;
  }
  int opened() const { return opened_; }

 private:
  std::map<std::string, std::string> blobs_;
  int opened_ = 0;
};

Descriptor Describe(const std::string& media_type, const std::string& bytes) {
  Descriptor d;
  d.media_type = media_type;
  d.digest = cas::Digest::Of(bytes).ToString();
  d.size = bytes.size();
  return d;
}

class RegistryInteropTest : public ::testing::Test {
 protected:
  void SetUp() override { StartRegistry({}); }

  void StartRegistry(RegistryServerOptions options) {
    server_.reset();
    auto server = RegistryServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::map<std::string, std::string> ToolEnv() {
    return {{"HOME", tmp_.path()}, {"TMPDIR", tmp_.path()}};
  }

  CommandResult Run(const std::vector<std::string>& argv) {
    auto r = RunCommand(argv, ToolEnv(), absl::Seconds(120));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    return *r;
  }

  // An OCI layout with one image ("1"): busybox-static as /bin/busybox,
  // made by umoci.
  std::string BusyboxLayout() {
    std::string lay = tmp_.path() + "/busybox-layout";
    std::string root = tmp_.path() + "/busybox-root";
    mkdir(root.c_str(), 0755);
    mkdir((root + "/bin").c_str(), 0755);
    WriteFile(root + "/bin/busybox", ReadFile("/bin/busybox"));
    chmod((root + "/bin/busybox").c_str(), 0755);
    for (auto argv : std::vector<std::vector<std::string>>{
             {"umoci", "init", "--layout", lay},
             {"umoci", "new", "--image", lay + ":1"},
             {"umoci", "insert", "--rootless", "--image", lay + ":1",
              root + "/bin/busybox", "/bin/busybox"},
             {"umoci", "config", "--image", lay + ":1", "--config.entrypoint",
              "/bin/busybox", "--architecture", "amd64", "--os", "linux"}}) {
      CommandResult r = Run(argv);
      EXPECT_EQ(r.exit_code, 0) << argv[1] << ": " << r.output;
    }
    return lay;
  }

  std::unique_ptr<RegistrySources> Sources(RegistryOptions o = {}) {
    o.retry.initial_backoff = absl::Milliseconds(10);
    auto s = RegistrySources::Create(std::move(o));
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  std::string Ref(const std::string& repo_tag) {
    return server_->address() + "/" + repo_tag;
  }

  TempDir tmp_;
  std::unique_ptr<RegistryServer> server_;
};

TEST_F(RegistryInteropTest, KilnPullsWhatSkopeoPushed) {
  std::string lay = BusyboxLayout();
  CommandResult copy =
      Run({"skopeo", "--insecure-policy", "copy", "oci:" + lay + ":1",
           "docker://" + Ref("skopeo/busybox:1"), "--dest-tls-verify=false"});
  ASSERT_EQ(copy.exit_code, 0) << copy.output;
  LayoutDir layout(lay);
  auto expected = layout.GetManifest("1");
  ASSERT_TRUE(expected.ok()) << expected.status();

  auto sources = Sources();
  auto opened = sources->Open(Ref("skopeo/busybox:1"));
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->name, Ref("skopeo/busybox"));
  EXPECT_EQ(opened->tag_or_digest, "1");
  auto image = ResolveImage(*opened->source, opened->tag_or_digest,
                            {"linux", "amd64", ""});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->manifest.digest, expected->digest);
  ASSERT_EQ(image->parsed.layers.size(), 1u);

  for (const Descriptor& d : {image->parsed.config, image->parsed.layers[0]}) {
    std::string path = tmp_.path() + "/fetched";
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    absl::Status s = opened->source->FetchBlob(d, fd);
    close(fd);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(ReadFile(path), layout.Blob(d.digest)) << d.digest;
  }
  auto config = ParseImageConfig(layout.Blob(image->parsed.config.digest));
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->entrypoint, std::vector<std::string>{"/bin/busybox"});

  // By digest, through a pinned reference.
  auto pinned = sources->Open(Ref("skopeo/busybox@") + expected->digest);
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  auto m = pinned->source->GetManifest(pinned->tag_or_digest);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->bytes, expected->bytes);

  // A tag that is not there: NotFound naming the registry's error code.
  auto missing = opened->source->GetManifest("nope");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr("MANIFEST_UNKNOWN"));
}

// kiln writes its own config and manifest around busybox's layer, pushes
// them (plus an index), and skopeo and umoci read the result.
TEST_F(RegistryInteropTest, SkopeoAndUmociReadWhatKilnPushed) {
  std::string lay = BusyboxLayout();
  LayoutDir layout(lay);
  auto base = ResolveImage(layout, "1", {"linux", "amd64", ""});
  ASSERT_TRUE(base.ok()) << base.status();
  auto base_config = ParseImageConfig(layout.Blob(base->parsed.config.digest));
  ASSERT_TRUE(base_config.ok());

  ImageConfig config = *base_config;
  config.labels["org.kiln.test"] = "pushed-by-kiln";
  config.cmd = {"echo", "hi"};
  std::string config_bytes = ToJson(config);
  Manifest manifest;
  manifest.media_type = kOciManifest;
  manifest.config = Describe(kOciConfig, config_bytes);
  manifest.layers = base->parsed.layers;
  std::string manifest_bytes = ToJson(manifest);

  MemoryBlobs blobs;
  blobs.Add(config_bytes);
  blobs.Add(layout.Blob(manifest.layers[0].digest));
  auto sources = Sources();
  PushOptions push_options;
  push_options.extra_tags = {"latest"};
  auto digest = PushImage(*sources, Ref("kiln/app:1"), manifest_bytes,
                          kOciManifest, blobs, push_options);
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, cas::Digest::Of(manifest_bytes).ToString());

  CommandResult raw = Run({"skopeo", "inspect", "--raw", "--tls-verify=false",
                           "docker://" + Ref("kiln/app:latest")});
  ASSERT_EQ(raw.exit_code, 0) << raw.output;
  EXPECT_EQ(raw.output, manifest_bytes);
  CommandResult cfg =
      Run({"skopeo", "inspect", "--config", "--tls-verify=false",
           "docker://" + Ref("kiln/app:1")});
  ASSERT_EQ(cfg.exit_code, 0) << cfg.output;
  EXPECT_THAT(cfg.output, HasSubstr("pushed-by-kiln"));

  std::string out = tmp_.path() + "/copied";
  CommandResult copy =
      Run({"skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
           "docker://" + Ref("kiln/app:1"), "oci:" + out + ":1"});
  ASSERT_EQ(copy.exit_code, 0) << copy.output;
  std::string bundle = tmp_.path() + "/bundle";
  CommandResult unpack =
      Run({"umoci", "unpack", "--rootless", "--image", out + ":1", bundle});
  ASSERT_EQ(unpack.exit_code, 0) << unpack.output;
  EXPECT_EQ(ReadFile(bundle + "/rootfs/bin/busybox"), ReadFile("/bin/busybox"));
  EXPECT_THAT(ReadFile(bundle + "/config.json"), HasSubstr("pushed-by-kiln"));

  // An index over it, pushed by kiln and resolved by platform.
  Index index;
  index.media_type = kOciIndex;
  Descriptor entry = Describe(kOciManifest, manifest_bytes);
  entry.platform = Platform{"linux", "amd64", ""};
  index.manifests = {entry};
  std::string index_bytes = ToJson(index);
  MemoryBlobs with_manifest;
  with_manifest.Add(config_bytes);
  with_manifest.Add(layout.Blob(manifest.layers[0].digest));
  with_manifest.Add(manifest_bytes);
  auto index_digest = PushImage(*sources, Ref("kiln/multi:1"), index_bytes,
                                kOciIndex, with_manifest);
  ASSERT_TRUE(index_digest.ok()) << index_digest.status();
  CommandResult index_raw =
      Run({"skopeo", "inspect", "--raw", "--tls-verify=false",
           "docker://" + Ref("kiln/multi:1")});
  ASSERT_EQ(index_raw.exit_code, 0) << index_raw.output;
  EXPECT_EQ(index_raw.output, index_bytes);
  auto opened = sources->Open(Ref("kiln/multi:1"));
  ASSERT_TRUE(opened.ok());
  auto resolved = ResolveImage(*opened->source, "1", {"linux", "amd64", ""});
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_EQ(resolved->manifest.digest, *digest);
}

TEST_F(RegistryInteropTest, PushSkipsPresentBlobsAndMountsAcrossRepositories) {
  std::string lay = BusyboxLayout();
  LayoutDir layout(lay);
  auto sources = Sources();
  auto first =
      PushFromSource(*sources, layout, "1", Ref("team/a:1"), tmp_.path());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, layout.GetManifest("1")->digest);
  std::string log = server_->Log();
  int uploads_a = CountOf(log, "\"POST /v2/team/a/blobs/uploads/");
  EXPECT_EQ(uploads_a, 2);  // config and layer

  // The target names the image now: AlreadyPushed says so with one GET.
  EXPECT_TRUE(AlreadyPushed(*sources, Ref("team/a:1"), *first));
  EXPECT_TRUE(AlreadyPushed(*sources, Ref("team/a@" + *first), *first));
  const std::string other_digest = "sha256:" + std::string(64, 'a');
  EXPECT_FALSE(AlreadyPushed(*sources, Ref("team/a:1"), other_digest));
  EXPECT_FALSE(AlreadyPushed(*sources, Ref("team/a:nope"), *first));
  EXPECT_FALSE(AlreadyPushed(*sources, Ref("team/zzz:1"), *first));
  EXPECT_FALSE(AlreadyPushed(*sources, Ref("team/a@" + other_digest), *first));

  // Again: every blob is found by HEAD, nothing uploaded.
  auto again =
      PushFromSource(*sources, layout, "1", Ref("team/a:2"), tmp_.path());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *first);
  log = server_->Log();
  EXPECT_EQ(CountOf(log, "\"POST /v2/team/a/blobs/uploads/"), uploads_a);

  // Another repository: the blobs are mounted from team/a, not uploaded.
  auto other =
      PushFromSource(*sources, layout, "1", Ref("team/b:1"), tmp_.path());
  ASSERT_TRUE(other.ok()) << other.status();
  log = server_->Log();
  EXPECT_EQ(CountOf(log, "\"POST /v2/team/b/blobs/uploads/?mount=sha256%3A"), 2)
      << log;
  EXPECT_EQ(CountOf(log, "&from=team%2Fa HTTP/1.1\" 201 "), 2) << log;
  EXPECT_EQ(CountOf(log, "\"PUT /v2/team/b/blobs/uploads/"), 0) << log;
  CommandResult inspect =
      Run({"skopeo", "inspect", "--raw", "--tls-verify=false",
           "docker://" + Ref("team/b:1")});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_EQ(cas::Digest::Of(inspect.output).ToString(), *first);
}

// The layout pushed in place (no copies); a symlinked or resized blob in a
// layout is refused.
TEST_F(RegistryInteropTest, PushLayoutInPlace) {
  std::string lay = BusyboxLayout();
  LayoutDir layout(lay);
  auto top = layout.GetManifest("1");
  ASSERT_TRUE(top.ok()) << top.status();
  int dir = open(lay.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0);
  auto blobs = BlobsFromLayout(dir);
  auto sources = Sources();
  auto digest = PushImage(*sources, Ref("inplace/app:1"), top->bytes,
                          top->media_type, *blobs);
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, top->digest);
  CommandResult raw = Run({"skopeo", "inspect", "--raw", "--tls-verify=false",
                           "docker://" + Ref("inplace/app:1")});
  ASSERT_EQ(raw.exit_code, 0) << raw.output;
  EXPECT_EQ(raw.output, top->bytes);

  auto manifest = ParseManifest(top->bytes, top->media_type);
  ASSERT_TRUE(manifest.ok());
  const Descriptor& layer = manifest->layers[0];
  std::string path = lay + "/blobs/sha256/" + layer.digest.substr(7);
  std::string moved = tmp_.path() + "/moved-layer";
  ASSERT_EQ(rename(path.c_str(), moved.c_str()), 0);
  ASSERT_EQ(symlink(moved.c_str(), path.c_str()), 0);
  auto linked = blobs->OpenBlob(layer);
  EXPECT_FALSE(linked.ok());
  ASSERT_EQ(unlink(path.c_str()), 0);
  WriteFile(path, "short");
  auto resized = blobs->OpenBlob(layer);
  ASSERT_FALSE(resized.ok());
  EXPECT_THAT(resized.status().message(), HasSubstr("not a regular file of"));
  // A layout whose blobs/ is a symlink is refused too.
  std::string lay2 = tmp_.path() + "/linked-layout";
  mkdir(lay2.c_str(), 0755);
  ASSERT_EQ(symlink((lay + "/blobs").c_str(), (lay2 + "/blobs").c_str()), 0);
  int dir2 = open(lay2.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir2, 0);
  auto via_link = BlobsFromLayout(dir2)->OpenBlob(manifest->config);
  EXPECT_FALSE(via_link.ok());
  close(dir2);
  close(dir);
}

TEST_F(RegistryInteropTest, ChunkedUpload) {
  std::string lay = BusyboxLayout();
  LayoutDir layout(lay);
  RegistryOptions o;
  o.chunked_upload_threshold = 100 << 10;
  o.chunk_bytes = 256 << 10;
  auto sources = Sources(o);
  auto digest =
      PushFromSource(*sources, layout, "1", Ref("chunked/app:1"), tmp_.path());
  ASSERT_TRUE(digest.ok()) << digest.status();
  std::string log = server_->Log();
  // The ~1 MiB layer goes in 256 KiB chunks.
  EXPECT_GE(CountOf(log, "\"PATCH /v2/chunked/app/blobs/uploads/"), 4) << log;
  std::string out = tmp_.path() + "/copied";
  CommandResult copy =
      Run({"skopeo", "--insecure-policy", "copy", "--src-tls-verify=false",
           "docker://" + Ref("chunked/app:1"), "oci:" + out + ":1"});
  ASSERT_EQ(copy.exit_code, 0) << copy.output;
  LayoutDir copied(out);
  auto m = copied.GetManifest("1");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->digest, *digest);
}

TEST_F(RegistryInteropTest, BasicAuthWithHtpasswd) {
  RegistryServerOptions basic;
  basic.username = "alice";
  basic.password = "s3cret-pw";
  StartRegistry(basic);
  std::string lay = BusyboxLayout();
  LayoutDir layout(lay);

  // No credentials: a clear error.
  auto anonymous = Sources();
  auto refused =
      PushFromSource(*anonymous, layout, "1", Ref("auth/app:1"), tmp_.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("none are configured"));
  EXPECT_THAT(refused.status().message(), HasSubstr(server_->address()));

  // Wrong password: refused, never shown.
  RegistryOptions wrong;
  wrong.credentials[server_->address()] = {"alice", "not-the-pw", ""};
  auto bad = Sources(wrong);
  auto bad_push =
      PushFromSource(*bad, layout, "1", Ref("auth/app:1"), tmp_.path());
  ASSERT_FALSE(bad_push.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(bad_push.status())) << bad_push.status();
  EXPECT_THAT(bad_push.status().message(), HasSubstr("refused"));
  EXPECT_THAT(bad_push.status().message(), Not(HasSubstr("not-the-pw")));

  // Credentials from a docker config.json.
  std::string config_path = tmp_.path() + "/config.json";
  WriteFile(config_path,
            absl::StrCat(R"({"auths":{"http://)", server_->address(),
                         R"(/":{"auth":")", "YWxpY2U6czNjcmV0LXB3",
                         R"("}}})"));  // alice:s3cret-pw
  RegistryOptions from_file;
  from_file.docker_config_path = config_path;
  auto authed = Sources(from_file);
  auto digest =
      PushFromSource(*authed, layout, "1", Ref("auth/app:1"), tmp_.path());
  ASSERT_TRUE(digest.ok()) << digest.status();

  // skopeo reads it with the same credentials; kiln pulls it back.
  CommandResult raw =
      Run({"skopeo", "inspect", "--raw", "--tls-verify=false", "--creds",
           "alice:s3cret-pw", "docker://" + Ref("auth/app:1")});
  ASSERT_EQ(raw.exit_code, 0) << raw.output;
  EXPECT_EQ(cas::Digest::Of(raw.output).ToString(), *digest);
  auto opened = authed->Open(Ref("auth/app:1"));
  ASSERT_TRUE(opened.ok());
  auto image = ResolveImage(*opened->source, "1", {"linux", "amd64", ""});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->manifest.digest, *digest);
}

// HTTPS with a private CA: verified with `ca_file`, refused without it.
TEST_F(RegistryInteropTest, TlsWithCustomCa) {
  std::string cert = tmp_.path() + "/cert.pem";
  std::string key = tmp_.path() + "/key.pem";
  CommandResult gen =
      Run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
           "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
           "-addext", "subjectAltName=IP:127.0.0.1"});
  ASSERT_EQ(gen.exit_code, 0) << gen.output;
  RegistryServerOptions tls;
  tls.tls_certificate = cert;
  tls.tls_key = key;
  StartRegistry(tls);
  std::string lay = BusyboxLayout();
  LayoutDir layout(lay);

  RegistryOptions untrusted;
  untrusted.plain_http_loopback = false;
  untrusted.retry.max_attempts = 1;
  auto refused = PushFromSource(*Sources(untrusted), layout, "1",
                                Ref("tls/app:1"), tmp_.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("certificate"));

  RegistryOptions trusted = untrusted;
  trusted.ca_file = cert;
  auto sources = Sources(trusted);
  auto digest =
      PushFromSource(*sources, layout, "1", Ref("tls/app:1"), tmp_.path());
  ASSERT_TRUE(digest.ok()) << digest.status();
  CommandResult raw =
      Run({"skopeo", "inspect", "--raw", "--cert-dir", tmp_.path() + "/certs",
           "--tls-verify=false", "docker://" + Ref("tls/app:1")});
  ASSERT_EQ(raw.exit_code, 0) << raw.output;
  EXPECT_EQ(cas::Digest::Of(raw.output).ToString(), *digest);
  auto opened = sources->Open(Ref("tls/app:1"));
  ASSERT_TRUE(opened.ok());
  auto image = ResolveImage(*opened->source, "1", {"linux", "amd64", ""});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->manifest.digest, *digest);
}

}  // namespace
}  // namespace kiln::oci::registry
