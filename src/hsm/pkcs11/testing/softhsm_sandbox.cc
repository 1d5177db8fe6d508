#include "hsm/pkcs11/testing/softhsm_sandbox.h"

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "common/fs.h"

namespace signet::hsm::testing {

Result<std::unique_ptr<SoftHsmSandbox>> SoftHsmSandbox::Create() {
  std::string pattern = (std::filesystem::temp_directory_path() / "signet-softhsm-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    return Unavailable("cannot create a temporary folder for the SoftHSM sandbox at " + pattern);
  }
  std::unique_ptr<SoftHsmSandbox> sandbox(new SoftHsmSandbox(pattern));
  std::string tokens = pattern + "/tokens";
  SIGNET_TRY(fs::EnsureDirectory(tokens));
  std::string config = pattern + "/softhsm2.conf";
  std::string text = "directories.tokendir = " + tokens +
                     "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n";
  SIGNET_TRY(fs::WriteFileAtomic(config, AsBytes(text)));
  if (setenv("SOFTHSM2_CONF", config.c_str(), 1) != 0) {
    return Unavailable("cannot set SOFTHSM2_CONF");
  }
  return sandbox;
}

SoftHsmSandbox::~SoftHsmSandbox() {
  std::error_code ignored;
  std::filesystem::remove_all(directory_, ignored);
}

Pkcs11Options SoftHsmSandbox::OptionsFor(std::string_view label) {
  Pkcs11Options options;
  options.module_path = kSoftHsmModulePath;
  options.token_label = std::string(label);
  options.user_pin = SecretBytes(kTestUserPin);
  return options;
}

Result<Pkcs11Options> SoftHsmSandbox::CreateToken(std::string_view label) const {
  SIGNET_TRY(InitializeToken(kSoftHsmModulePath, label, SecretBytes(kTestSoPin),
                             SecretBytes(kTestUserPin)));
  return OptionsFor(label);
}

SoftHsmSandbox& SharedSoftHsmSandbox() {
  static SoftHsmSandbox* const sandbox = [] {
    Result<std::unique_ptr<SoftHsmSandbox>> created = SoftHsmSandbox::Create();
    if (!created.ok()) {
      std::fprintf(stderr, "cannot create the SoftHSM sandbox: %s\n",
                   created.error().message().c_str());
      std::abort();
    }
    // Removed at exit, after every test has closed its stores.
    static std::unique_ptr<SoftHsmSandbox> owner = std::move(created).value();
    return owner.get();
  }();
  return *sandbox;
}

}  // namespace signet::hsm::testing
