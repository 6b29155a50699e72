#include "core/base64.h"

#include <openssl/evp.h>

#include <vector>

namespace ra {

std::string Base64Encode(std::string_view data) {
  std::vector<unsigned char> out(4 * ((data.size() + 2) / 3) + 1);
  const int n = EVP_EncodeBlock(out.data(), reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  return std::string(reinterpret_cast<const char*>(out.data()), n < 0 ? 0 : n);
}

}  // namespace ra
