//! Where `moat setup` puts the elevated tier, and the names it uses.
//!
//! Constants of the build, never read from the environment: the setuid
//! launcher uses them as root, and a caller must not be able to point it
//! elsewhere.

/// The setuid launcher (root:moat-users, mode 4750).
pub const LAUNCHER: &str = "/usr/local/libexec/moat/moat-launch";

/// Setup's record and lock, and the launcher's firewall stamp. Root-owned,
/// as is every directory above it.
pub const STATE_DIR: &str = "/var/lib/moat";

/// Where the launcher keeps the user namespaces that carry the id
/// mappings of idmapped mounts, between runs (root-only).
pub const IDMAP_PINS: &str = "/run/moat/idmap";

/// The nftables table moat owns.
pub const NFT_TABLE: &str = "inet moat";

/// The nft tool, run by the launcher to list the table (by this path,
/// with a fixed environment).
pub const NFT: &str = "/usr/sbin/nft";

/// The sandbox accounts.
pub const OFFLINE: &str = "moat-offline";
pub const ONLINE: &str = "moat-online";
/// The sandbox accounts' primary group.
pub const SANDBOX_GROUP: &str = "moat-sandbox";
/// People allowed to run commands as the sandbox accounts.
pub const USERS_GROUP: &str = "moat-users";
/// How setup marks the accounts it made (the passwd comment field).
pub const GECOS: &str = "moat sandbox account";
