// SigningKeys: the server's secrets for subscriptions — an Ed25519 key that signs webhook
// deliveries (its public half published as a JWK Set) and an HMAC key for wake tokens.
//
// Guarantees:
// - The keys are generated once and kept in <data-dir>/subscription-keys (mode 0600, written to a
//   temporary file, fsynced and renamed), so the `kid`, the published public key and every token
//   already handed out stay valid across restarts. A damaged file is an error, never silently
//   replaced: replacing it would invalidate what receivers have pinned.
// - `kid` is "ds_" + the first 16 characters of the key's RFC 7638 JWK thumbprint (base64url of
//   SHA-256 over {"crv":"Ed25519","kty":"OKP","x":…}): stable, derived from the key material.
// - sign() is the Webhook-Signature value the protocol defines:
//   t=<unix seconds>,kid=<kid>,ed25519=<unpadded base64url Ed25519 signature of "<t>.<body>">.
// Thread-safe after open() (the keys are immutable).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "store/status.h"

namespace ds {

class SigningKeys {
 public:
  ~SigningKeys();
  // Loads the keys from `path`, creating them when the file does not exist.
  static Status open(const std::string& path, std::unique_ptr<SigningKeys>* out);

  const std::string& kid() const { return kid_; }
  // {"keys":[{"kty":"OKP","crv":"Ed25519","kid":…,"use":"sig","alg":"EdDSA","x":…}]}
  const std::string& jwks_json() const { return jwks_; }
  std::string sign(int64_t unix_seconds, std::string_view body) const;
  // Raw HMAC-SHA256 of `data` under the token key.
  std::string mac(std::string_view data) const;

 private:
  SigningKeys() = default;
  void* pkey_ = nullptr;  // EVP_PKEY*
  std::string mac_key_;
  std::string kid_;
  std::string jwks_;
};

// Unpadded base64url (RFC 4648 §5) and its inverse (nullopt-like: false on bad input).
std::string base64url_encode(std::string_view bytes);
bool base64url_decode(std::string_view text, std::string* out);

}  // namespace ds
