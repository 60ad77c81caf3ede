package devidp

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// The pages are plain server-rendered HTML forms: no JavaScript, no cookies. The
// login request ID (128 random bits) in the login form is the only thing tying a
// submission to an authorization request; the device page is tied to the user code.
// Nothing is authenticated: whoever reaches the provider may log in as anyone.
// That is the point of a development provider, and why the banner says so.

// Error codes carried in data-error on the pages, read back by the browser stand-ins.
const (
	codeBadRequest       = "bad_request"
	codeUnknownLogin     = "unknown_login_request"
	codeUnknownUser      = "unknown_user"
	codeUnknownUserCode  = "unknown_user_code"
	resultDeviceApproved = "approved"
	resultDeviceDenied   = "denied"
	maxFormBytes         = 16 << 10
	queryLoginID         = "authRequestID"
)

// errorCodes maps page error codes back to sentinel errors.
var errorCodes = map[string]error{
	codeUnknownLogin:    ErrUnknownLoginRequest,
	codeUnknownUser:     ErrUnknownUser,
	codeUnknownUserCode: ErrUnknownUserCode,
}

type pages struct {
	p        *Provider
	callback func(context.Context, string) string
}

type pageUser struct {
	Subject, Name, Email string
	Groups               []string
}

type pageMessage struct{ Code, Text string }

type pageData struct {
	Title    string
	Error    *pageMessage
	Result   *pageMessage
	Issuer   string
	ClientID string
	Scopes   []string
	LoginID  string
	UserCode string
	Users    []pageUser
	// DeviceForm shows the user-code entry form; DeviceChoice the approve/deny form.
	DeviceForm, DeviceChoice bool
}

var tmpl = template.Must(template.New("").Parse(`
{{define "head"}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · development identity provider</title>
<style>
body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}
.banner{background:#fff3cd;border:2px solid #d39e00;padding:.75rem 1rem;border-radius:.4rem}
.error{background:#f8d7da;border:1px solid #c82333;padding:.5rem 1rem;border-radius:.4rem}
.result{background:#d4edda;border:1px solid #28a745;padding:.5rem 1rem;border-radius:.4rem}
button{display:block;width:100%;text-align:left;margin:.5rem 0;padding:.6rem 1rem;font-size:1rem;cursor:pointer}
button.deny{text-align:center;background:#eee}
.detail{display:block;color:#555;font-size:.85rem}
input[type=text]{font-size:1.2rem;padding:.4rem;letter-spacing:.1rem;text-transform:uppercase}
code{background:#f3f3f3;padding:0 .2rem}
</style>
</head>
<body>
<p class="banner"><strong>Development identity provider — for local use only.</strong>
Anyone who can reach this page can sign in as any user listed here. Never use it for a real deployment.</p>
<h1>{{.Title}}</h1>
{{with .Error}}<p class="error" data-error="{{.Code}}">{{.Text}}</p>
{{end}}{{with .Result}}<p class="result" data-result="{{.Code}}">{{.Text}}</p>
{{end}}{{end}}

{{define "users"}}{{range .Users}}<button type="submit" name="subject" value="{{.Subject}}"><strong>{{if .Name}}{{.Name}}{{else}}{{.Subject}}{{end}}</strong>
<span class="detail">sub: {{.Subject}}{{with .Email}} · {{.}}{{end}}{{with .Groups}} · groups: {{range $i, $g := .}}{{if $i}}, {{end}}{{$g}}{{end}}{{end}}</span></button>
{{else}}<p>No users are configured.</p>
{{end}}{{end}}

{{define "foot"}}<p class="detail">Issuer <code>{{.Issuer}}</code></p>
</body>
</html>
{{end}}

{{define "index"}}{{template "head" .}}<p>This provider speaks OpenID Connect for bastion's tests and <code>bastion demo</code>.</p>
<ul>
<li><a href="/device">Approve a device login</a> (enter the code <code>bastion login --device</code> shows)</li>
<li><a href="/.well-known/openid-configuration">Discovery document</a></li>
</ul>
{{template "foot" .}}{{end}}

{{define "login"}}{{template "head" .}}{{if .LoginID}}<p>Client <code>{{.ClientID}}</code> asks you to sign in. Choose a user:</p>
<form method="post" action="/login">
<input type="hidden" name="authRequestID" value="{{.LoginID}}">
{{template "users" .}}</form>
{{else}}<p>Start the login again from the application.</p>
{{end}}{{template "foot" .}}{{end}}

{{define "device"}}{{template "head" .}}{{if .DeviceChoice}}<p>Client <code>{{.ClientID}}</code> asks for access{{with .Scopes}} (scopes: {{range $i, $s := .}}{{if $i}}, {{end}}{{$s}}{{end}}){{end}} with code <code>{{.UserCode}}</code>. Approve as:</p>
<form method="post" action="/device">
<input type="hidden" name="user_code" value="{{.UserCode}}">
{{template "users" .}}<button type="submit" name="action" value="deny" class="deny">Deny</button>
</form>
{{end}}{{if .DeviceForm}}<form method="get" action="/device">
<p><label>Enter the code shown on your device:<br>
<input type="text" name="user_code" value="{{.UserCode}}" autocomplete="off" autocapitalize="characters" required></label></p>
<p><button type="submit">Continue</button></p>
</form>
{{end}}{{template "foot" .}}{{end}}
`))

// render writes a page with the security headers every page gets.
func (pg *pages) render(w http.ResponseWriter, status int, name string, d *pageData) {
	d.Issuer = pg.p.issuer
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, name, d); err != nil {
		pg.p.log.Error("render page", "page", name, "err", err)
		http.Error(w, "devidp: cannot render page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (pg *pages) users() []pageUser {
	us := make([]pageUser, len(pg.p.store.users))
	for i, u := range pg.p.store.users {
		us[i] = pageUser{Subject: u.Subject, Name: u.Name, Email: u.Email, Groups: u.Groups}
	}
	return us
}

// parseForm reads a bounded urlencoded form body. A field that appears more than
// once is refused: there is no reason for it and it hides which value counts.
func parseForm(w http.ResponseWriter, r *http.Request, fields ...string) (map[string]string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, errors.New("the form could not be read")
	}
	out := make(map[string]string, len(fields))
	for _, f := range fields {
		vs := r.PostForm[f]
		if len(vs) > 1 {
			return nil, errors.New("a form field was sent more than once")
		}
		if len(vs) == 1 {
			out[f] = vs[0]
		}
	}
	return out, nil
}

func (pg *pages) index(w http.ResponseWriter, r *http.Request) {
	pg.render(w, http.StatusOK, "index", &pageData{Title: "Development identity provider"})
}

// loginForm lists the users for a pending login request.
func (pg *pages) loginForm(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get(queryLoginID)
	req, err := pg.p.store.pendingLogin(id)
	if err != nil {
		pg.render(w, http.StatusBadRequest, "login", &pageData{Title: "Sign in",
			Error: &pageMessage{codeUnknownLogin, "This login request is unknown, expired or already completed."}})
		return
	}
	pg.render(w, http.StatusOK, "login", &pageData{Title: "Sign in", LoginID: req.id, ClientID: req.clientID, Users: pg.users()})
}

// loginSubmit completes a login request as the chosen user and sends the browser
// back to zitadel's authorize callback, which redirects to the client.
func (pg *pages) loginSubmit(w http.ResponseWriter, r *http.Request) {
	form, err := parseForm(w, r, queryLoginID, "subject")
	if err != nil {
		pg.render(w, http.StatusBadRequest, "login", &pageData{Title: "Sign in", Error: &pageMessage{codeBadRequest, err.Error()}})
		return
	}
	id := form[queryLoginID]
	req, err := pg.p.store.completeLogin(id, form["subject"])
	switch {
	case errors.Is(err, ErrUnknownUser):
		d := &pageData{Title: "Sign in", Error: &pageMessage{codeUnknownUser, "There is no such user. Choose one of the users below."}}
		if pending, err := pg.p.store.pendingLogin(id); err == nil {
			d.LoginID, d.ClientID, d.Users = pending.id, pending.clientID, pg.users()
		}
		pg.render(w, http.StatusBadRequest, "login", d)
		return
	case err != nil:
		pg.render(w, http.StatusBadRequest, "login", &pageData{Title: "Sign in",
			Error: &pageMessage{codeUnknownLogin, "This login request is unknown, expired or already completed. Start the login again from the application."}})
		return
	}
	pg.p.log.Info("login", "user", req.subject, "client_id", req.clientID)
	http.Redirect(w, r, pg.callback(op.ContextWithIssuer(r.Context(), pg.p.issuer), req.id), http.StatusSeeOther)
}

// deviceForm asks for a user code, or, given a pending one, offers the users.
func (pg *pages) deviceForm(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("user_code")
	if code == "" {
		pg.render(w, http.StatusOK, "device", &pageData{Title: "Device login", DeviceForm: true})
		return
	}
	clientID, scopes, err := pg.p.store.pendingDevice(code)
	if err != nil {
		pg.render(w, http.StatusBadRequest, "device", &pageData{Title: "Device login", DeviceForm: true,
			Error: &pageMessage{codeUnknownUserCode, "This code is unknown, expired or already used. Check the code on your device."}})
		return
	}
	pg.render(w, http.StatusOK, "device", &pageData{Title: "Device login", DeviceChoice: true,
		UserCode: strings.ToUpper(code), ClientID: clientID, Scopes: scopes, Users: pg.users()})
}

// deviceSubmit approves a device authorization as the chosen user, or denies it.
func (pg *pages) deviceSubmit(w http.ResponseWriter, r *http.Request) {
	form, err := parseForm(w, r, "user_code", "subject", "action")
	if err != nil {
		pg.render(w, http.StatusBadRequest, "device", &pageData{Title: "Device login", DeviceForm: true,
			Error: &pageMessage{codeBadRequest, err.Error()}})
		return
	}
	code, subject := form["user_code"], form["subject"]
	var approve bool
	switch form["action"] {
	case "", "approve":
		approve = true
	case "deny":
	default:
		pg.render(w, http.StatusBadRequest, "device", &pageData{Title: "Device login", DeviceForm: true,
			Error: &pageMessage{codeBadRequest, "Unknown action."}})
		return
	}
	if approve && subject == "" {
		pg.render(w, http.StatusBadRequest, "device", &pageData{Title: "Device login", DeviceForm: true,
			Error: &pageMessage{codeBadRequest, "Choose a user to approve as, or deny."}})
		return
	}
	clientID, err := pg.p.store.decideDevice(code, subject, approve)
	switch {
	case errors.Is(err, ErrUnknownUser):
		d := &pageData{Title: "Device login", Error: &pageMessage{codeUnknownUser, "There is no such user. Choose one of the users below."}}
		if cid, scopes, err := pg.p.store.pendingDevice(code); err == nil {
			d.DeviceChoice, d.UserCode, d.ClientID, d.Scopes, d.Users = true, strings.ToUpper(code), cid, scopes, pg.users()
		} else {
			d.DeviceForm = true
		}
		pg.render(w, http.StatusBadRequest, "device", d)
		return
	case err != nil:
		pg.render(w, http.StatusBadRequest, "device", &pageData{Title: "Device login", DeviceForm: true,
			Error: &pageMessage{codeUnknownUserCode, "This code is unknown, expired or already used. Check the code on your device."}})
		return
	}
	if !approve {
		pg.p.log.Info("device login denied", "client_id", clientID)
		pg.render(w, http.StatusOK, "device", &pageData{Title: "Device login",
			Result: &pageMessage{resultDeviceDenied, "Denied. The device will not be signed in."}})
		return
	}
	pg.p.log.Info("device login approved", "user", subject, "client_id", clientID)
	pg.render(w, http.StatusOK, "device", &pageData{Title: "Device login",
		Result: &pageMessage{resultDeviceApproved, "Approved. You can return to your device."}})
}
