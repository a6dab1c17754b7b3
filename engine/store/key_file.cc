#include "engine/store/key_file.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status.h"

namespace kiln::store {
namespace {

constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

// Reads the key file: the key, NotFound if absent, or FailedPrecondition
// (with the size found) when it is not exactly kKeyBytes long.
absl::StatusOr<std::string> ReadKey(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(path);
    return ErrnoStatus(errno, absl::StrCat("opening ", path));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    // Not damage kiln made or can judge: left alone, an error.
    return absl::InvalidArgumentError(absl::StrCat(
        path, " is not a regular file; remove it to get a new key"));
  }
  if ((st.st_mode & 077) != 0) fchmod(fd, 0600);  // owner-only, always
  std::string key(kKeyBytes + 1, '\0');
  size_t got = 0;
  while (got < key.size()) {
    ssize_t n = read(fd, &key[got], key.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      return ErrnoStatus(err, absl::StrCat("reading ", path));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  if (got != kKeyBytes) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is damaged (", got == kKeyBytes + 1 ? "over " : "",
                     got, " bytes; a key is ", kKeyBytes, ")"));
  }
  key.resize(kKeyBytes);
  return key;
}

// Creates the key file unless one exists (link() never replaces).
absl::Status CreateKey(const std::string& path) {
  std::string fresh(kKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(fresh.data()),
                 static_cast<int>(fresh.size())) != 1) {
    return absl::InternalError("no random bytes for a new key");
  }
  std::string tmp = absl::StrCat(path, ".tmp-XXXXXX");  // unique per call
  int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("creating ", tmp));
  bool ok = fchmod(fd, 0600) == 0 &&
            write(fd, fresh.data(), fresh.size()) ==
                static_cast<ssize_t>(fresh.size()) &&
            fsync(fd) == 0;
  int err = errno;
  close(fd);
  if (ok && link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) {
    ok = false;
    err = errno;
  }
  unlink(tmp.c_str());
  if (!ok) return ErrnoStatus(err, absl::StrCat("writing ", path));
  return absl::OkStatus();
}

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

const unsigned char* U(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

absl::StatusOr<std::string> LoadOrCreateKey(const std::string& path,
                                            absl::string_view consequence) {
  // A few rounds: another process may create or repair the file meanwhile.
  for (int round = 0; round < 4; ++round) {
    absl::StatusOr<std::string> key = ReadKey(path);
    if (key.ok()) return key;
    if (absl::IsNotFound(key.status())) {
      if (absl::Status s = CreateKey(path); !s.ok()) return s;
      continue;
    }
    if (!absl::IsFailedPrecondition(key.status())) return key.status();
    // Damaged: repair under the lock, re-checking first (another process
    // may have repaired it already).
    std::string lock_path = absl::StrCat(path, ".lock");
    int lock = open(lock_path.c_str(),
                    O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock < 0)
      return ErrnoStatus(errno, absl::StrCat("opening ", lock_path));
    while (flock(lock, LOCK_EX) != 0 && errno == EINTR) {
    }
    absl::StatusOr<std::string> again = ReadKey(path);
    absl::Status repaired;
    if (!again.ok() && absl::IsFailedPrecondition(again.status())) {
      std::string aside =
          absl::StrCat(path, ".damaged-", absl::ToUnixSeconds(absl::Now()));
      if (rename(path.c_str(), aside.c_str()) != 0) {
        repaired = ErrnoStatus(errno, absl::StrCat("moving aside ", path));
      } else {
        repaired = CreateKey(path);
        if (repaired.ok()) {
          std::fprintf(stderr,
                       "kiln: WARNING: %s; moved it to %s and created a new "
                       "key; %s\n",
                       std::string(again.status().message()).c_str(),
                       aside.c_str(), std::string(consequence).c_str());
        }
      }
    }
    close(lock);  // releases the flock
    if (!repaired.ok()) return repaired;
  }
  return absl::UnavailableError(
      absl::StrCat(path, ": the key file keeps changing; try again"));
}

absl::StatusOr<std::string> SealValue(absl::string_view key,
                                      absl::string_view plaintext,
                                      absl::string_view aad) {
  if (key.size() != kKeyBytes) return absl::InternalError("bad key size");
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  unsigned char* nonce = reinterpret_cast<unsigned char*>(out.data());
  if (RAND_bytes(nonce, kNonceBytes) != 1) {
    return absl::InternalError("no random bytes for a nonce");
  }
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  unsigned char* body = nonce + kNonceBytes;
  if (ctx == nullptr ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, U(key),
                         nonce) != 1 ||
      (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, U(aad),
                                         static_cast<int>(aad.size())) != 1) ||
      (!plaintext.empty() &&
       EVP_EncryptUpdate(ctx.get(), body, &len, U(plaintext),
                         static_cast<int>(plaintext.size())) != 1) ||
      EVP_EncryptFinal_ex(ctx.get(), body + plaintext.size(), &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                          body + plaintext.size()) != 1) {
    return absl::InternalError("AES-256-GCM encryption failed");
  }
  return out;
}

absl::StatusOr<std::string> OpenSealedValue(absl::string_view key,
                                            absl::string_view sealed,
                                            absl::string_view aad) {
  if (key.size() != kKeyBytes) return absl::InternalError("bad key size");
  if (sealed.size() < kNonceBytes + kTagBytes) {
    return absl::DataLossError("sealed value too short");
  }
  const size_t n = sealed.size() - kNonceBytes - kTagBytes;
  std::string out(n, '\0');
  std::string tag(sealed.substr(kNonceBytes + n));
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (ctx == nullptr ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, U(key),
                         U(sealed)) != 1 ||
      (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len, U(aad),
                                         static_cast<int>(aad.size())) != 1) ||
      (n > 0 && EVP_DecryptUpdate(
                    ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                    &len, U(sealed) + kNonceBytes, static_cast<int>(n)) != 1) ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes,
                          tag.data()) != 1) {
    return absl::InternalError("AES-256-GCM decryption failed");
  }
  unsigned char final_block[16];
  if (EVP_DecryptFinal_ex(ctx.get(), final_block, &len) != 1) {
    return absl::DataLossError(
        "sealed value does not open with this key (altered, or the key "
        "changed)");
  }
  return out;
}

}  // namespace kiln::store
