#include "openstack/keystone.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/duration.h"
#include "core/log.h"
#include "core/time_format.h"
#include "openstack/errors.h"
#include "openstack/json_fields.h"

namespace ra::openstack {

namespace {

using nlohmann::json;

std::string TokensUrl(const std::string& auth_url) {
  std::string base = auth_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (!base.ends_with("/v3")) base += "/v3";
  return base + "/auth/tokens";
}

json Domain(const std::string& id, const std::string& name) {
  if (!id.empty()) return {{"id", id}};
  return {{"name", name.empty() ? "Default" : name}};
}

Result<json> User(const AuthOptions& a) {
  if (!a.user_id.empty()) return json{{"id", a.user_id}};
  if (a.username.empty()) {
    return Fail(ErrorKind::kConfig, "keystone: auth needs user_id or username");
  }
  return json{{"name", a.username}, {"domain", Domain(a.user_domain_id, a.user_domain_name)}};
}

}  // namespace

Result<std::string> BuildAuthRequest(const AuthOptions& a) {
  if (a.auth_url.empty()) return Fail(ErrorKind::kConfig, "keystone: auth_url is empty");
  json identity;
  json body;
  if (a.type == AuthType::kApplicationCredential) {
    if (a.application_credential_secret.empty()) {
      return Fail(ErrorKind::kConfig, "keystone: application_credential_secret is empty");
    }
    json cred{{"secret", a.application_credential_secret.Reveal()}};
    if (!a.application_credential_id.empty()) {
      cred["id"] = a.application_credential_id;
    } else if (!a.application_credential_name.empty()) {
      auto user = User(a);
      if (!user) {
        return Fail(ErrorKind::kConfig,
                    "keystone: an application credential given by name needs its user "
                    "(user_id or username)");
      }
      cred["name"] = a.application_credential_name;
      cred["user"] = *user;
    } else {
      return Fail(ErrorKind::kConfig,
                  "keystone: application credential auth needs application_credential_id or "
                  "application_credential_name");
    }
    identity = {{"methods", {"application_credential"}}, {"application_credential", cred}};
    // An application credential carries its own scope; Keystone rejects an explicit one.
    body = {{"auth", {{"identity", identity}}}};
    return body.dump();
  }
  if (a.password.empty()) return Fail(ErrorKind::kConfig, "keystone: password is empty");
  auto user = User(a);
  if (!user) return Fail(user.error());
  (*user)["password"] = a.password.Reveal();
  identity = {{"methods", {"password"}}, {"password", {{"user", *user}}}};
  json scope;
  if (!a.project_id.empty()) {
    scope = {{"project", {{"id", a.project_id}}}};
  } else if (!a.project_name.empty()) {
    // The project's domain defaults to the user's, as the openstack CLI does.
    const std::string& did = a.project_domain_id.empty() && a.project_domain_name.empty()
                                 ? a.user_domain_id
                                 : a.project_domain_id;
    const std::string& dname = a.project_domain_id.empty() && a.project_domain_name.empty()
                                   ? a.user_domain_name
                                   : a.project_domain_name;
    scope = {{"project", {{"name", a.project_name}, {"domain", Domain(did, dname)}}}};
  } else if (!a.domain_id.empty() || !a.domain_name.empty()) {
    scope = {{"domain", Domain(a.domain_id, a.domain_name)}};
  } else {
    return Fail(ErrorKind::kConfig,
                "keystone: password auth needs a scope (project_id, project_name or a domain); "
                "an unscoped token has no catalog");
  }
  body = {{"auth", {{"identity", identity}, {"scope", scope}}}};
  return body.dump();
}

Result<Token> ParseTokenResponse(const HttpResponse& response) {
  const std::string subject = response.Header("X-Subject-Token");
  if (subject.empty()) {
    return Fail(ErrorKind::kParse, "keystone: answer has no X-Subject-Token header");
  }
  Token token;
  // Registered for redaction from here on; tokens are renewed for as long as the service runs,
  // so only the newest are remembered.
  token.value = Secret(subject, Secret::Ephemeral{});
  json j = json::parse(response.body, nullptr, false);
  if (!j.is_object() || !j.contains("token") || !j["token"].is_object()) {
    return Fail(ErrorKind::kParse, "keystone: answer has no token object");
  }
  const json& t = j["token"];
  auto expires = ParseTimestamp(StringField(t, "expires_at"));
  if (!expires) return Fail(ErrorKind::kParse, "keystone: expires_at: " + expires.error().message);
  token.expires_at = *expires;
  if (t.contains("user") && t["user"].is_object()) token.user_id = StringField(t["user"], "id");
  if (t.contains("project") && t["project"].is_object()) {
    token.project_id = StringField(t["project"], "id");
    token.project_name = StringField(t["project"], "name");
  }
  if (t.contains("catalog") && t["catalog"].is_array()) {
    for (const json& s : t["catalog"]) {
      if (!s.is_object()) continue;
      CatalogService service{StringField(s, "type"), StringField(s, "name"), {}};
      if (s.contains("endpoints") && s["endpoints"].is_array()) {
        for (const json& e : s["endpoints"]) {
          if (!e.is_object()) continue;
          std::string region = StringField(e, "region_id");
          if (region.empty()) region = StringField(e, "region");
          service.endpoints.push_back({StringField(e, "interface"), region, StringField(e, "url")});
        }
      }
      token.catalog.push_back(std::move(service));
    }
  }
  return token;
}

Result<std::string> FindEndpoint(const std::vector<CatalogService>& catalog,
                                 std::string_view service_type, std::string_view interface,
                                 std::string_view region) {
  std::vector<std::string_view> types{service_type};
  if (service_type == "block-storage" || service_type == "volumev3" || service_type == "volume") {
    types = {"block-storage", "volumev3", "volume"};
  }
  for (std::string_view type : types) {
    std::vector<const CatalogEndpoint*> matches;
    for (const CatalogService& s : catalog) {
      if (s.type != type) continue;
      for (const CatalogEndpoint& e : s.endpoints) {
        if (e.interface != interface) continue;
        if (!region.empty() && e.region != region) continue;
        matches.push_back(&e);
      }
    }
    if (matches.size() == 1) return matches.front()->url;
    if (matches.size() > 1) {
      bool same = true;
      for (const CatalogEndpoint* e : matches) same = same && e->url == matches.front()->url;
      if (same) return matches.front()->url;
      return Fail(ErrorKind::kConfig,
                  fmt::format("catalog has {} '{}' endpoints for interface '{}' in different "
                              "regions; set region_name",
                              matches.size(), type, interface));
    }
  }
  std::string offered;
  for (const CatalogService& s : catalog) {
    for (const CatalogEndpoint& e : s.endpoints) {
      offered += fmt::format("{}{}/{}/{}", offered.empty() ? "" : ", ", s.type, e.interface,
                             e.region.empty() ? "-" : e.region);
    }
  }
  return Fail(ErrorKind::kConfig,
              fmt::format("no '{}' endpoint for interface '{}' in region '{}' (catalog has: {}); "
                          "set an endpoint override",
                          service_type, interface, region.empty() ? "any" : region,
                          offered.empty() ? "nothing" : offered));
}

KeystoneAuth::KeystoneAuth(AuthOptions auth, HttpTransport& transport, const Clock& clock,
                           Duration refresh_margin, std::string user_agent)
    : auth_(std::move(auth)),
      transport_(transport),
      clock_(clock),
      refresh_margin_(refresh_margin),
      user_agent_(std::move(user_agent)) {}

Result<std::shared_ptr<const Token>> KeystoneAuth::GetToken() {
  std::lock_guard lock(mu_);
  if (token_ && clock_.Now() < token_->expires_at - refresh_margin_) return token_;
  auto body = BuildAuthRequest(auth_);
  if (!body) return Fail(body.error());
  HttpRequest request;
  request.method = "POST";
  request.url = TokensUrl(auth_.auth_url);
  request.headers["Content-Type"] = "application/json";
  request.headers["Accept"] = "application/json";
  request.headers["User-Agent"] = user_agent_;
  request.body = std::move(*body);
  auto response = transport_.Send(request);
  if (!response) {
    return Fail(response.error().kind, "keystone: " + log::Redact(response.error().message));
  }
  if (response->status != 201 && response->status != 200) {
    Error error = ErrorFromResponse(*response, "keystone: authenticate");
    if (response->status == 403 || response->status == 404) error.kind = ErrorKind::kAuth;
    return Fail(error);
  }
  auto token = ParseTokenResponse(*response);
  if (!token) return Fail(token.error());
  if (token->catalog.empty()) {
    return Fail(ErrorKind::kAuth, "keystone: the token has no service catalog (is it scoped?)");
  }
  ++authentications_;
  token_ = std::make_shared<const Token>(std::move(*token));
  log::Info("keystone: authenticated",
            {{"project_id", token_->project_id}, {"expires_at", FormatTime(token_->expires_at)}});
  return token_;
}

void KeystoneAuth::Invalidate(const std::shared_ptr<const Token>& token) {
  std::lock_guard lock(mu_);
  if (token_ == token) token_.reset();
}

int KeystoneAuth::authentications() const {
  std::lock_guard lock(mu_);
  return authentications_;
}

}  // namespace ra::openstack
