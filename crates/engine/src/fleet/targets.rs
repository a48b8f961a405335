//! The targets of a fleet: databases from a file (one connection string per line, or TOML
//! `[[target]]` entries with `url`, `name` and labels), from a query against the control
//! database, or the tenant schemas of a database (`--schemas 'tenant_%'`).

use std::collections::BTreeMap;
use std::path::Path;

use migsafe_pg::ConnSpec;
use serde::Deserialize;

use crate::apply::history::HistoryTable;
use crate::EngineError;

/// One database, or one tenant schema of a database, that the fleet migrates.
#[derive(Debug, Clone)]
pub struct Target {
    /// Unique within the fleet: the file's `name`, the query's `name` column, else the
    /// database name (and `/schema` for a tenant schema).
    pub name: String,
    /// How to connect (for a tenant schema, with its `search_path`). Never printed as is:
    /// [`Target::url`] is the redacted form.
    pub spec: ConnSpec,
    /// The tenant schema, when the target is one schema of a database.
    pub schema: Option<String>,
    /// Labels from the targets file or query (`host`, `region`, `tier`…).
    pub labels: BTreeMap<String, String>,
}

impl Target {
    /// A whole database.
    pub fn database(name: Option<String>, spec: ConnSpec) -> Target {
        let name = name.unwrap_or_else(|| spec.dbname().to_string());
        Target { name, spec, schema: None, labels: BTreeMap::new() }
    }

    /// The connection string without its password.
    pub fn url(&self) -> String {
        match &self.schema {
            Some(s) => format!("{} (schema {s})", self.spec.redacted()),
            None => self.spec.redacted(),
        }
    }

    /// The server, for `--per-host`: the `host` label when given, else the address.
    pub fn host(&self) -> String {
        self.labels.get("host").cloned().unwrap_or_else(|| self.spec.server())
    }

    /// What its snapshots read: a tenant schema only its own schema.
    pub fn snapshot_options(&self) -> migsafe_catalog::SnapshotOptions {
        let mut o = migsafe_catalog::SnapshotOptions::default();
        if let Some(s) = &self.schema {
            o.only_schemas = vec![s.clone()];
        }
        o
    }

    /// Where this target keeps its history.
    pub fn history(&self) -> HistoryTable {
        match &self.schema {
            Some(s) => HistoryTable::tenant(s),
            None => HistoryTable::database(),
        }
    }
}

/// A `[[target]]` entry of a TOML targets file.
#[derive(Debug, Deserialize)]
struct Entry {
    url: String,
    name: Option<String>,
    #[serde(flatten)]
    labels: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    target: Vec<Entry>,
}

/// Read a targets file: TOML with `[[target]]` entries, or one connection string per line
/// (blank lines and lines starting with `#` are skipped).
pub fn from_file(path: &Path) -> Result<Vec<Target>, EngineError> {
    let text = std::fs::read_to_string(path).map_err(|source| EngineError::File { path: path.into(), source })?;
    let bad = |line: usize, problem: String| EngineError::BadFile {
        path: path.into(),
        problem: if line > 0 { format!("line {line}: {problem}") } else { problem },
    };
    let toml_like = text.lines().any(|l| l.trim_start().starts_with("[[target]]"));
    let mut out = Vec::new();
    if toml_like {
        let file: TargetsFile = toml::from_str(&text).map_err(|e| bad(0, e.to_string()))?;
        for (i, e) in file.target.into_iter().enumerate() {
            let spec = ConnSpec::parse(&e.url).map_err(|err| {
                bad(0, format!("target {}: {err}", e.name.clone().unwrap_or_else(|| (i + 1).to_string())))
            })?;
            let mut t = Target::database(e.name, spec);
            t.labels = e
                .labels
                .into_iter()
                .map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                .collect();
            out.push(t);
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let spec = ConnSpec::parse(line).map_err(|e| bad(i + 1, e.to_string()))?;
            out.push(Target::database(None, spec));
        }
    }
    unique_names(out)
}

/// Targets from a query against the control database: a `name` and a `url` column (else the
/// first two columns, in that order); every other text column is a label.
pub fn from_query(control: &ConnSpec, sql: &str) -> Result<Vec<Target>, EngineError> {
    let mut c = control.with_application_name("migsafe fleet (targets)").connect()?;
    let rows = c.query(sql, &[])?;
    let mut out = Vec::new();
    for row in &rows {
        let cols = row.columns();
        let index = |name: &str, fallback: usize| cols.iter().position(|c| c.name() == name).unwrap_or(fallback);
        let (ni, ui) = (index("name", 0), index("url", 1));
        if cols.len() < 2 {
            return Err(EngineError::Usage("--targets-sql must return a name and a url column".into()));
        }
        let text = |i: usize| -> Result<String, EngineError> {
            row.try_get::<_, Option<String>>(i)
                .map_err(|_| EngineError::Usage(format!("--targets-sql: column {} is not text", cols[i].name())))
                .map(Option::unwrap_or_default)
        };
        let (name, url) = (text(ni)?, text(ui)?);
        let spec =
            ConnSpec::parse(&url).map_err(|e| EngineError::Usage(format!("--targets-sql: target {name}: {e}")))?;
        let mut t = Target::database(Some(name), spec);
        for (i, col) in cols.iter().enumerate() {
            if i != ni && i != ui {
                if let Ok(Some(v)) = row.try_get::<_, Option<String>>(i) {
                    t.labels.insert(col.name().to_string(), v);
                }
            }
        }
        out.push(t);
    }
    unique_names(out)
}

/// Each schema of each database whose name is `LIKE pattern` is a target (migsafe's own
/// schemas excepted), migrated with its own `search_path` and history.
pub fn schemas_of(databases: &[Target], pattern: &str) -> Result<Vec<Target>, EngineError> {
    let mut out = Vec::new();
    for db in databases {
        let mut c = db.spec.with_application_name("migsafe fleet (targets)").connect()?;
        let rows = c.query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1 AND nspname NOT LIKE 'migsafe%' \
             AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1",
            &[&pattern],
        )?;
        for r in rows {
            let schema: String = r.get(0);
            let name = if databases.len() == 1 { schema.clone() } else { format!("{}/{schema}", db.name) };
            out.push(Target {
                name,
                spec: db.spec.with_search_path(&schema),
                schema: Some(schema),
                labels: db.labels.clone(),
            });
        }
    }
    unique_names(out)
}

/// Names must be unique: the ledger keys targets by name. Two databases of the same name on
/// different servers get `server/db`.
fn unique_names(mut targets: Vec<Target>) -> Result<Vec<Target>, EngineError> {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for t in &targets {
        *count.entry(t.name.clone()).or_default() += 1;
    }
    for t in &mut targets {
        if count[&t.name] > 1 && t.schema.is_none() {
            t.name = format!("{}/{}", t.spec.server(), t.name);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in &targets {
        if !seen.insert(t.name.clone()) {
            return Err(EngineError::Usage(format!(
                "two targets are both named {:?}: give them distinct names",
                t.name
            )));
        }
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn lines_and_toml() {
        let f = file("# tenants\npostgresql://u:secret@h1:5432/a\n\npostgresql://u@h2/b\n");
        let t = from_file(f.path()).unwrap();
        assert_eq!(t.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(t[0].host(), "h1:5432");
        assert!(!t[0].url().contains("secret"), "{}", t[0].url());
        let f = file("[[target]]\nurl = \"postgresql://u@h/a\"\nname = \"acme\"\nregion = \"eu\"\ntier = 2\n\n[[target]]\nurl = \"postgresql://u@h/b\"\nhost = \"db-1\"\n");
        let t = from_file(f.path()).unwrap();
        assert_eq!(t[0].name, "acme");
        assert_eq!(t[0].labels["region"], "eu");
        assert_eq!(t[0].labels["tier"], "2");
        assert_eq!(t[1].host(), "db-1");
    }

    #[test]
    fn duplicate_names_are_told_apart_or_refused() {
        let f = file("postgresql://u@h1/app\npostgresql://u@h2/app\n");
        let t = from_file(f.path()).unwrap();
        assert_eq!(t[0].name, "h1:5432/app");
        let f = file("postgresql://u@h1/app\npostgresql://u@h1/app\n");
        assert!(from_file(f.path()).unwrap_err().to_string().contains("both named"));
    }

    #[test]
    fn bad_line_says_where() {
        let f = file("postgresql://u@h1/app\npostgresql://u:pw@h1:notaport/app\n");
        let e = from_file(f.path()).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains(":pw@"), "{e}");
    }
}
