#include "hsm/pkcs11/testing/raw_token.h"

#include <array>

#include "hsm/pkcs11/internal/ckr.h"

namespace signet::hsm::testing {

using internal::Module;
using internal::Session;

Result<std::unique_ptr<RawToken>> RawToken::Open(const std::string& module_path,
                                                 std::string label) {
  SIGNET_ASSIGN_OR_RETURN(Module module, Module::Load(module_path));
  return std::unique_ptr<RawToken>(new RawToken(std::move(module), std::move(label)));
}

Result<CK_SLOT_ID> RawToken::Slot() const {
  internal::TokenSearch search = internal::FindToken(module_, {label_, ""});
  if (search.rv != CKR_OK) return internal::RvError(search.rv, "C_GetSlotList", "raw token");
  if (!search.slot) return NotFound("raw token: no token '" + label_ + "'");
  return *search.slot;
}

Result<Session> RawToken::OpenSession() const {
  SIGNET_ASSIGN_OR_RETURN(CK_SLOT_ID slot, Slot());
  Session session;
  CK_RV rv = Session::Open(module_, slot, &session);
  if (rv != CKR_OK) return internal::RvError(rv, "C_OpenSession", "raw token");
  return session;
}

Result<std::vector<CK_OBJECT_HANDLE>> RawToken::FindKeys(const Session& session,
                                                         CK_OBJECT_CLASS object_class,
                                                         ByteView id) const {
  std::array<CK_ATTRIBUTE, 2> search = {
      CK_ATTRIBUTE{CKA_CLASS, &object_class, sizeof object_class},
      CK_ATTRIBUTE{CKA_ID, const_cast<uint8_t*>(id.data()), id.size()}};
  std::vector<CK_OBJECT_HANDLE> found;
  CK_RV rv = internal::FindObjects(module_, session.get(), search, 100, &found);
  if (rv != CKR_OK) return internal::RvError(rv, "C_FindObjects", "raw token");
  return found;
}

CK_RV RawToken::CloseAllSessions() const {
  Result<CK_SLOT_ID> slot = Slot();
  if (!slot.ok()) return CKR_TOKEN_NOT_PRESENT;
  return module_.Call(&CK_FUNCTION_LIST::C_CloseAllSessions, *slot);
}

CK_RV RawToken::Logout() const {
  Result<Session> session = OpenSession();
  if (!session.ok()) return CKR_SESSION_HANDLE_INVALID;
  return module_.Call(&CK_FUNCTION_LIST::C_Logout, session->get());
}

CK_RV RawToken::FinalizeAndInitialize() const {
  CK_RV rv = Finalize();
  if (rv != CKR_OK) return rv;
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  return module_.Call(&CK_FUNCTION_LIST::C_Initialize, &args);
}

CK_RV RawToken::Finalize() const { return module_.Call(&CK_FUNCTION_LIST::C_Finalize, nullptr); }

}  // namespace signet::hsm::testing
