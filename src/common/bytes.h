// Byte buffers. Bytes is an ordinary owning buffer; ByteView a non-owning view. SecretBytes holds
// PINs, passwords and other secrets: it wipes its memory when destroyed or reassigned, cannot be
// copied implicitly, has no stream operator (so it cannot reach a log by accident), and compares
// in constant time. None of these types is internally synchronised.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace signet {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

// Views over text as bytes and back; no copies of secrets are made by these.
inline ByteView AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline Bytes ToBytes(std::string_view s) { return Bytes(s.begin(), s.end()); }
inline std::string ToString(ByteView b) { return std::string(b.begin(), b.end()); }

// Overwrites memory in a way the optimiser may not remove.
void SecureWipe(void* data, size_t size);

// Compares two byte ranges in time that depends only on their lengths.
bool ConstantTimeEquals(ByteView a, ByteView b);

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(ByteView data) : data_(data.begin(), data.end()) {}
  explicit SecretBytes(std::string_view text) : SecretBytes(AsBytes(text)) {}
  ~SecretBytes() { Wipe(); }

  // Copying a secret must be a visible decision (Clone), never an accident of pass-by-value.
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  SecretBytes(SecretBytes&& other) noexcept : data_(std::move(other.data_)) { other.data_.clear(); }
  SecretBytes& operator=(SecretBytes&& other) noexcept {
    if (this != &other) {
      Wipe();
      data_ = std::move(other.data_);
      other.data_.clear();
    }
    return *this;
  }

  SecretBytes Clone() const { return SecretBytes(view()); }

  ByteView view() const { return data_; }
  // The secret as text, for APIs that take char pointers (C_Login). The view dies with *this.
  std::string_view text_view() const {
    return {reinterpret_cast<const char*>(data_.data()), data_.size()};
  }
  const uint8_t* data() const { return data_.data(); }
  size_t size() const { return data_.size(); }
  bool empty() const { return data_.empty(); }

  bool Equals(const SecretBytes& other) const { return ConstantTimeEquals(view(), other.view()); }

 private:
  void Wipe() {
    // Wipe the whole capacity: earlier, longer contents may still sit past size().
    if (data_.capacity() > 0) {
      data_.resize(data_.capacity());
      SecureWipe(data_.data(), data_.size());
    }
    data_.clear();
  }
  std::vector<uint8_t> data_;
};

}  // namespace signet
