#include "cli/key_backend.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "cli/data_dir.h"
#include "cli/remote_context.h"

namespace signet::cli {
namespace {

// Who the log names for a local command: the operator at this machine, by the OS account the
// process runs as (not $USER, which anyone sets to anything, and which sudo sets to root). Under
// sudo the invoking user is named too, as "root (sudo by alice)": sudo's word, as the log says.
service::Actor LocalActor() {
  service::Actor actor;
  actor.account_id = "local";
  const uid_t uid = ::geteuid();
  std::string name = "uid-" + std::to_string(uid);
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr &&
      found->pw_name != nullptr && *found->pw_name != '\0') {
    name = found->pw_name;
  }
  const char* sudo_user = std::getenv("SUDO_USER");
  if (uid == 0 && sudo_user != nullptr && *sudo_user != '\0') {
    name += " (sudo by " + std::string(sudo_user).substr(0, 64) + ")";
  }
  actor.account_name = std::move(name);
  actor.auth_method = service::AuthMethod::kLocalCli;
  return actor;
}

// KeyService on the data folder's token and database.
class LocalKeyBackend final : public KeyBackend {
 public:
  explicit LocalKeyBackend(std::unique_ptr<LocalContext> ctx) : ctx_(std::move(ctx)) {}

  Result<store::KeyRecord> CreateKey(const std::string& name, KeyAlgorithm alg) override {
    return ctx_->keys->CreateKey(LocalActor(), name, alg, "local");
  }
  Result<std::vector<store::KeyRecord>> ListKeys() override { return ctx_->keys->ListKeys(); }
  Result<service::KeyDetails> ShowKey(const std::string& name) override {
    return ctx_->keys->ShowKey(name);
  }
  Result<store::KeyRecord> DisableKey(const std::string& name) override {
    return ctx_->keys->DisableKey(LocalActor(), name);
  }
  Result<store::KeyRecord> EnableKey(const std::string& name) override {
    return ctx_->keys->EnableKey(LocalActor(), name);
  }
  Result<store::KeyRecord> DestroyKey(const std::string& name) override {
    return ctx_->keys->DestroyKey(LocalActor(), name);
  }
  Status CheckKeyExists(const std::string& name) override {
    SIGNET_TRY(ctx_->store->GetKeyByName(name));
    return OkStatus();
  }
  Result<std::string> CreateCsr(const std::string& name, const std::string& subject) override {
    return ctx_->keys->CreateCsr(LocalActor(), name, subject);
  }
  Result<store::KeyRecord> ImportCertificateChain(const std::string& name,
                                                  const std::string& chain_pem) override {
    return ctx_->keys->ImportCertificateChain(LocalActor(), name, chain_pem);
  }
  Result<std::vector<service::UnrecordedKey>> ListUnrecordedKeys() override {
    return ctx_->keys->ListUnrecordedKeys();
  }
  Result<service::UnrecordedKey> DestroyUnrecordedKey(const std::string& hsm_key_id) override {
    return ctx_->keys->DestroyUnrecordedKey(LocalActor(), hsm_key_id);
  }

 private:
  std::unique_ptr<LocalContext> ctx_;
};

}  // namespace

Result<std::unique_ptr<KeyBackend>> OpenKeyBackend(const GlobalOptions& global) {
  if (ChooseKeyTarget(global) == KeyTarget::kRemote) {
    SIGNET_ASSIGN_OR_RETURN(auto remote, RemoteContext::Open(global));
    return MakeRemoteKeyBackend(std::move(remote));
  }
  SIGNET_ASSIGN_OR_RETURN(auto ctx, OpenLocal(global));
  return std::unique_ptr<KeyBackend>(new LocalKeyBackend(std::move(ctx)));
}

}  // namespace signet::cli
