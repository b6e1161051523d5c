#include "core/signing_keys.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "store/s3/sigv4.h"

namespace ds {

namespace {

// File layout: "DSK1", the 32-byte Ed25519 private key, the 32-byte HMAC key.
constexpr std::string_view kMagic = "DSK1";
constexpr size_t kKeyBytes = 32;
constexpr size_t kFileBytes = 4 + 2 * kKeyBytes;

std::string errno_text(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

Status read_file(const std::string& path, std::string* out, bool* missing) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *missing = errno == ENOENT;
    return *missing ? Status::ok() : Status::io_error(errno_text("open", path));
  }
  *missing = false;
  char buf[256];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
  int err = errno;
  ::close(fd);
  if (n < 0) {
    errno = err;
    return Status::io_error(errno_text("read", path));
  }
  return Status::ok();
}

Status write_file_durably(const std::string& path, const std::string& bytes) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::io_error(errno_text("create", tmp));
  bool ok = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()) &&
            ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) {
    errno = err;
    return Status::io_error(errno_text("write", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::io_error(errno_text("rename", tmp));
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Status::io_error(errno_text("open", dir));
  ok = ::fsync(dfd) == 0;
  ::close(dfd);
  return ok ? Status::ok() : Status::io_error(errno_text("fsync", dir));
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (bytes.size() - i == 1) {
    uint32_t v = byte(i) << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
  } else if (bytes.size() - i == 2) {
    uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

bool base64url_decode(std::string_view text, std::string* out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  if (text.size() % 4 == 1) return false;
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero (canonical encoding only).
  return (acc & ((1u << bits) - 1)) == 0;
}

SigningKeys::~SigningKeys() { EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_)); }

Status SigningKeys::open(const std::string& path, std::unique_ptr<SigningKeys>* out) {
  std::string bytes;
  bool missing = false;
  if (Status s = read_file(path, &bytes, &missing); !s) return s;
  if (missing) {
    unsigned char fresh[2 * kKeyBytes];
    if (RAND_bytes(fresh, sizeof fresh) != 1) return Status::io_error("no random bytes for keys");
    bytes = std::string(kMagic) + std::string(reinterpret_cast<char*>(fresh), sizeof fresh);
    if (Status s = write_file_durably(path, bytes); !s) return s;
  }
  if (bytes.size() != kFileBytes || bytes.compare(0, kMagic.size(), kMagic) != 0) {
    return Status::corruption(path + " is not a subscription key file (remove it to make new "
                              "keys; webhook receivers then need the new JWK Set)");
  }
  std::unique_ptr<SigningKeys> k(new SigningKeys());
  k->pkey_ = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(bytes.data() + 4),
      kKeyBytes);
  if (k->pkey_ == nullptr) return Status::corruption(path + ": bad Ed25519 key");
  k->mac_key_ = bytes.substr(4 + kKeyBytes, kKeyBytes);
  unsigned char pub[kKeyBytes];
  size_t pub_len = sizeof pub;
  if (EVP_PKEY_get_raw_public_key(static_cast<EVP_PKEY*>(k->pkey_), pub, &pub_len) != 1) {
    return Status::corruption(path + ": cannot derive the public key");
  }
  std::string x = base64url_encode(std::string_view(reinterpret_cast<char*>(pub), pub_len));
  // RFC 7638: the required members in lexicographic order, no whitespace.
  std::string canonical = "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"" + x + "\"}";
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(canonical.data()), canonical.size(), md);
  k->kid_ = "ds_" + base64url_encode(std::string_view(reinterpret_cast<char*>(md), sizeof md))
                        .substr(0, 16);
  k->jwks_ = "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"" + k->kid_ +
             "\",\"use\":\"sig\",\"alg\":\"EdDSA\",\"x\":\"" + x + "\"}]}";
  *out = std::move(k);
  return Status::ok();
}

std::string SigningKeys::sign(int64_t unix_seconds, std::string_view body) const {
  std::string t = std::to_string(unix_seconds);
  std::string message = t + "." + std::string(body);
  unsigned char sig[64];
  size_t sig_len = sizeof sig;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr &&
            EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(pkey_)) == 1 &&
            EVP_DigestSign(ctx, sig, &sig_len, reinterpret_cast<const unsigned char*>(message.data()),
                           message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return "";
  return "t=" + t + ",kid=" + kid_ + ",ed25519=" +
         base64url_encode(std::string_view(reinterpret_cast<char*>(sig), sig_len));
}

std::string SigningKeys::mac(std::string_view data) const { return s3::hmac_sha256(mac_key_, data); }

}  // namespace ds
