// SoftHsmSandbox: a throwaway SoftHSM2 token store for tests and benchmarks. It creates a fresh
// temporary folder with a tokens/ directory and a softhsm2.conf (file object store, log level
// ERROR), points SOFTHSM2_CONF at it, and removes the folder when destroyed.
//
// SoftHSM reads SOFTHSM2_CONF in C_Initialize, so a sandbox must exist before the process first
// initialises the module, and there should be one per process (SharedSoftHsmSandbox()). Not
// thread-safe: create it before starting threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"
#include "hsm/pkcs11/pkcs11_key_store.h"

namespace signet::hsm::testing {

inline constexpr const char* kSoftHsmModulePath = "/usr/lib/softhsm/libsofthsm2.so";
inline constexpr std::string_view kTestSoPin = "sandbox-so-pin";
inline constexpr std::string_view kTestUserPin = "sandbox-user-pin";

class SoftHsmSandbox {
 public:
  // Creates the folder and config and sets SOFTHSM2_CONF. Unavailable if the folder cannot be
  // created.
  static Result<std::unique_ptr<SoftHsmSandbox>> Create();
  ~SoftHsmSandbox();
  // Owns (and deletes) a folder; a copy would delete it twice.
  SoftHsmSandbox(const SoftHsmSandbox&) = delete;
  SoftHsmSandbox& operator=(const SoftHsmSandbox&) = delete;

  // Initialises a new token `label` with kTestSoPin / kTestUserPin via InitializeToken and returns
  // the options that open it (module kSoftHsmModulePath, selected by label).
  Result<Pkcs11Options> CreateToken(std::string_view label) const;

  // Options for an existing token, with kTestUserPin.
  static Pkcs11Options OptionsFor(std::string_view label);

  const std::string& directory() const { return directory_; }

 private:
  explicit SoftHsmSandbox(std::string directory) : directory_(std::move(directory)) {}
  std::string directory_;
};

// The process's sandbox, created on first use and removed at exit. Aborts if it cannot be
// created (a test environment problem, not a test result).
SoftHsmSandbox& SharedSoftHsmSandbox();

}  // namespace signet::hsm::testing
