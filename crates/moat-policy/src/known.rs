//! The built-in lists: secrets, protected names, host IPC variables.
//!
//! Each list is data with a reason, so reviewing it does not mean reading
//! code.

/// Paths under the home directory whose reads are denied by default.
/// Overridable with `allow_read` in the person's config or a flag.
pub const DENIED_UNDER_HOME: &[&str] = &[
    // Keys and agents.
    ".ssh",
    ".gnupg",
    // Cloud and cluster credentials.
    ".aws",
    ".azure",
    ".config/gcloud",
    ".kube",
    ".docker",
    ".oci",
    ".config/doctl",
    ".terraform.d/credentials.tfrc.json",
    // Tokens for git hosts and package registries.
    ".netrc",
    ".git-credentials",
    ".config/git/credentials",
    ".config/gh",
    ".config/hub",
    ".config/glab-cli",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".npmrc",
    ".yarnrc.yml",
    ".gem/credentials",
    ".config/pip/pip.conf",
    ".m2/settings-security.xml",
    ".gradle/gradle.properties",
    ".vault-token",
    // Coding agents' own credentials: their login tokens, and the MCP
    // servers' settings, which hold API keys in their environment.
    ".claude/.credentials.json",
    ".claude.json",
    ".codex/auth.json",
    ".gemini/oauth_creds.json",
    ".config/github-copilot",
    // Browser profiles (cookies, saved passwords, sessions).
    ".mozilla",
    ".config/google-chrome",
    ".config/chromium",
    ".config/BraveSoftware",
    ".config/microsoft-edge",
    ".config/vivaldi",
    ".config/opera",
    ".var/app",
    "snap/firefox",
    "snap/chromium",
    // Password managers and keyrings.
    ".password-store",
    ".local/share/keyrings",
    ".local/share/kwalletd",
    ".config/1Password",
    ".config/Bitwarden",
    ".config/keepassxc",
    ".local/share/KeePass",
    ".pki",
    // Shell history often holds pasted secrets.
    ".bash_history",
    ".zsh_history",
    ".local/share/fish/fish_history",
    ".python_history",
    ".psql_history",
    ".mysql_history",
    // Windows profiles keep their secrets under AppData instead. The
    // entries are harmless elsewhere: a path that does not exist denies
    // nothing, and the view asks about `AppData` once.
    // DPAPI master keys, Credential Manager, vaults, private keys, and the
    // person's certificate store.
    "AppData/Roaming/Microsoft/Protect",
    "AppData/Roaming/Microsoft/Credentials",
    "AppData/Local/Microsoft/Credentials",
    "AppData/Roaming/Microsoft/Vault",
    "AppData/Local/Microsoft/Vault",
    "AppData/Roaming/Microsoft/Crypto",
    "AppData/Roaming/Microsoft/SystemCertificates",
    // .NET user secrets, NuGet feed keys, tokens of git hosts and clouds.
    "AppData/Roaming/Microsoft/UserSecrets",
    "AppData/Roaming/NuGet/NuGet.Config",
    "AppData/Roaming/GitHub CLI",
    "AppData/Roaming/gcloud",
    "AppData/Roaming/pip",
    "AppData/Roaming/Subversion/auth",
    // Browser profiles and password managers.
    "AppData/Local/Google/Chrome/User Data",
    "AppData/Local/Microsoft/Edge/User Data",
    "AppData/Local/BraveSoftware",
    "AppData/Local/Vivaldi/User Data",
    "AppData/Roaming/Mozilla",
    "AppData/Roaming/Opera Software",
    "AppData/Roaming/1Password",
    "AppData/Local/1Password",
    "AppData/Roaming/Bitwarden",
    "AppData/Roaming/KeePass",
    // WinINet's cookies and cache, and the data of Store apps (as
    // `.var/app` for Flatpak; Store programs are refused anyway).
    "AppData/Local/Microsoft/Windows/INetCookies",
    "AppData/Local/Microsoft/Windows/WebCache",
    "AppData/Local/Packages",
    // PowerShell's history.
    "AppData/Roaming/Microsoft/Windows/PowerShell/PSReadLine",
];

/// Names inside every writable root (and every repository found in one) that
/// stay read-only, because something outside the sandbox runs code from them
/// later.
pub const PROTECTED_IN_ROOT: &[&str] = &[
    // Settings of moat itself and of coding agents.
    ".moat",
    ".codex",
    ".agents",
    ".claude",
    ".cursor",
    ".gemini",
    ".mcp.json",
    // Editor settings (tasks, terminal profiles, extensions that run code).
    ".vscode",
    ".idea",
    // direnv runs it on `cd`.
    ".envrc",
    // Submodule URLs: read by git outside the sandbox.
    ".gitmodules",
];

/// Names in a git directory that decide what git runs.
pub const PROTECTED_IN_GITDIR: &[&str] = &["hooks", "config", "config.worktree", "commondir"];

/// Names of [`PROTECTED_IN_ROOT`] that get no placeholder when absent:
/// every other one does, so the command cannot create it. git reads
/// `.gitmodules` whenever it is there and fails if it is not a regular file;
/// its creation is caught by the audit at the end of the run, as that of
/// `config`, `commondir` and `config.worktree` in a git directory.
pub const NO_PLACEHOLDER_IN_ROOT: &[&str] = &[".gitmodules"];

/// Placeholders inside a git directory.
pub const PLACEHOLDER_IN_GITDIR: &[&str] = &["hooks"];

/// Shell and tool start-up files, protected when a writable root is a home
/// directory.
pub const HOME_STARTUP_FILES: &[&str] = &[
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".zlogout",
    ".cshrc",
    ".tcshrc",
    ".kshrc",
    ".inputrc",
    ".xprofile",
    ".xinitrc",
    ".xsession",
    ".pam_environment",
    ".gitconfig",
    ".config/git",
    ".config/fish",
    ".config/autostart",
    ".config/systemd",
    ".config/environment.d",
    ".local/share/applications",
    ".local/bin",
    ".ssh",
    ".moat",
    ".config/moat",
];

/// Directories the repository scan does not descend into: build output and
/// dependency caches, which are large and hold no repository the person
/// works in.
pub const SCAN_SKIP_DIRS: &[&str] = &[
    "target",
    "node_modules",
    ".venv",
    "venv",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".gradle",
    ".m2",
    ".cache",
    ".next",
    ".nuxt",
    "dist",
    "build",
    "_build",
    ".build",
    "bazel-out",
    "zig-cache",
    ".zig-cache",
    ".terraform",
    ".direnv",
    ".cargo",
    ".rustup",
    ".npm",
    ".yarn",
    ".pnpm-store",
];

/// Environment variables that address host IPC endpoints (sockets the
/// sandbox must not reach, or displays it must not drive).
pub const HOST_IPC_VARS: &[&str] = &[
    "SSH_AUTH_SOCK",
    "SSH_AGENT_PID",
    "GPG_AGENT_INFO",
    "DBUS_SESSION_BUS_ADDRESS",
    "DBUS_SYSTEM_BUS_ADDRESS",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "WAYLAND_SOCKET",
    "XAUTHORITY",
    "XDG_RUNTIME_DIR",
    "TMUX",
    "TMUX_PANE",
    "STY",
    "KITTY_LISTEN_ON",
    "KITTY_WINDOW_ID",
    "WEZTERM_UNIX_SOCKET",
    "ALACRITTY_SOCKET",
    "NVIM",
    "NVIM_LISTEN_ADDRESS",
    "EMACS_SOCKET_NAME",
    "I3SOCK",
    "SWAYSOCK",
    "HYPRLAND_INSTANCE_SIGNATURE",
    "PULSE_SERVER",
    "PIPEWIRE_REMOTE",
    "DOCKER_HOST",
    "CONTAINER_HOST",
    "KRB5CCNAME",
    "NOTIFY_SOCKET",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "SSH_ASKPASS",
    "GIT_ASKPASS",
    "SUDO_ASKPASS",
    "VSCODE_IPC_HOOK",
    "VSCODE_IPC_HOOK_CLI",
    "VSCODE_GIT_IPC_HANDLE",
    "VSCODE_GIT_ASKPASS_NODE",
    "VSCODE_GIT_ASKPASS_MAIN",
    "VSCODE_GIT_ASKPASS_EXTRA_ARGS",
    "JETBRAINS_REMOTE_RUN",
];

/// Prefixes of environment variable names that belong to credential-bearing
/// tools.
pub const SECRET_VAR_PREFIXES: &[&str] = &[
    "AWS_",
    "AZURE_",
    "ARM_CLIENT",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GCP_",
    "CLOUDSDK_AUTH",
    "DIGITALOCEAN_",
    "HCLOUD_",
    "VAULT_",
    "OP_SESSION",
    "OP_SERVICE_ACCOUNT",
    "BW_SESSION",
    "GH_",
    "GITHUB_TOKEN",
    "GITLAB_",
    "HF_",
    "HUGGING_FACE",
    "ANTHROPIC_",
    "OPENAI_",
    "CLAUDE_",
    "TWINE_",
    "DOCKER_AUTH",
    "PGPASS",
    "MYSQL_PWD",
    "REDIS_URL",
    "DATABASE_URL",
    "SENTRY_DSN",
    "SLACK_",
    "STRIPE_",
];

/// Words that mark an environment variable as a secret wherever they appear
/// in its name (compared in upper case): `GITHUBTOKEN`, `DB_PASSWORD_FILE`.
pub const SECRET_VAR_SUBSTRINGS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "APIKEY",
    "PRIVATEKEY",
];

/// Words that mark a variable as a secret when they are a whole
/// `_`-separated part of its name: `API_KEY`, `NPM_CONFIG__AUTH`, but not
/// `KEYTIMEOUT` or `GIT_AUTHOR_NAME`.
pub const SECRET_VAR_PARTS: &[&str] = &["KEY", "AUTH", "COOKIE", "DSN", "PAT", "PSW", "PWD"];

/// Variables that match a secret pattern but hold none, and that tools need.
/// `PWD` and `OLDPWD` are the current directory.
pub const SECRET_VAR_EXCEPTIONS: &[&str] = &[
    "PWD",
    "OLDPWD",
    "TOKENIZERS_PARALLELISM",
    "GPG_TTY",
    "SSH_KEYGEN",
];
