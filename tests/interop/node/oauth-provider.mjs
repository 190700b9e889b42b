// The OAuth client side both TypeScript SDK scripts use: a public client whose consent step is
// done headlessly (redirectToAuthorization fetches the consent page, fills in the owner passphrase
// and reads the 303), as a person would in the browser.
export const REDIRECT = "http://127.0.0.1:53683/callback";

export class HeadlessProvider {
  constructor(passphrase, name = "typescript-sdk interop") {
    this.passphrase = passphrase;
    this.name = name;
    this.info = undefined;
    this.saved = undefined;
    this.verifier = undefined;
    this.code = undefined;
    this.consentPages = 0;
    this.refreshes = 0;
  }
  get redirectUrl() { return REDIRECT; }
  get clientMetadata() {
    return {
      client_name: this.name,
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() { return this.info; }
  saveClientInformation(info) { this.info = info; }
  tokens() { return this.saved; }
  saveTokens(tokens) {
    if (this.saved) this.refreshes += 1;
    this.saved = tokens;
  }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
  // What a person does in the browser: open the page, type the passphrase, press Approve.
  async redirectToAuthorization(authorizationUrl) {
    const page = await fetch(authorizationUrl, { redirect: "manual" });
    if (page.status !== 200) throw new Error(`consent page: ${page.status} ${await page.text()}`);
    this.consentPages += 1;
    const html = await page.text();
    const field = (name) => html.match(new RegExp(`name="${name}" value="([^"]+)"`))[1];
    const origin = new URL(authorizationUrl).origin;
    const answer = await fetch(`${origin}/authorize`, {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded", origin },
      body: new URLSearchParams({
        authz: field("authz"), csrf: field("csrf"), passphrase: this.passphrase, decision: "approve",
      }),
    });
    if (answer.status !== 303) throw new Error(`consent answer: ${answer.status} ${await answer.text()}`);
    const back = new URL(answer.headers.get("location"));
    if (back.origin + back.pathname !== REDIRECT) throw new Error(`redirected to ${back}`);
    if (back.searchParams.get("iss") !== origin) throw new Error(`iss ${back.searchParams.get("iss")}`);
    this.code = back.searchParams.get("code");
  }
}
