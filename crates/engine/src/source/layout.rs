//! File naming of each layout: detection, pairing forward and rollback files, and where a
//! generated rollback goes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use migsafe_sql::directives::Directives;

use super::{checksum, read_text, Layout, Migration, SourceError, SqlText, Version};

/// What one file name says about the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Capture,
    UpDown,
    Flyway,
    NativeRollback,
    Numbered,
    DieselDir,
    PrismaDir,
}

fn shape_of(name: &str, is_dir: bool, path: &Path) -> Option<Shape> {
    if is_dir {
        split_version(name, true)?;
        if path.join("up.sql").is_file() {
            return Some(Shape::DieselDir);
        }
        return path.join("migration.sql").is_file().then_some(Shape::PrismaDir);
    }
    let stem = name.strip_suffix(".sql")?;
    if stem.ends_with(".capture") {
        return Some(Shape::Capture);
    }
    if let Some(s) = stem.strip_suffix(".up").or_else(|| stem.strip_suffix(".down")) {
        return split_version(s, false).map(|_| Shape::UpDown);
    }
    if flyway_parts(name).is_some() {
        return Some(Shape::Flyway);
    }
    if let Some(s) = stem.strip_suffix(".rollback") {
        return split_version(s, false).map(|_| Shape::NativeRollback);
    }
    split_version(stem, false).map(|_| Shape::Numbered)
}

/// `054_add_bookmarks` → ("054", "add_bookmarks"). Diesel folders allow dashes in the version.
fn split_version(stem: &str, dashes: bool) -> Option<(&str, &str)> {
    let end = stem.find(|c: char| !(c.is_ascii_digit() || (dashes && c == '-')))?;
    let (v, rest) = stem.split_at(end);
    let name = rest.strip_prefix('_')?;
    if v.is_empty() || !v.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    Some((v, name))
}

/// `V1_2__add_x.sql` → ('V', "1_2", "add_x").
fn flyway_parts(name: &str) -> Option<(char, &str, &str)> {
    let stem = name.strip_suffix(".sql")?;
    let prefix = stem.chars().next()?;
    if !matches!(prefix, 'V' | 'U') {
        return None;
    }
    let (version, desc) = stem[1..].split_once("__")?;
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '_') {
        return None;
    }
    Some((prefix, version, desc))
}

fn entries(dir: &Path) -> Result<Vec<(String, PathBuf, bool)>, SourceError> {
    let rd = std::fs::read_dir(dir).map_err(|e| SourceError::Unreadable { path: dir.to_path_buf(), source: e })?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| SourceError::Unreadable { path: dir.to_path_buf(), source: e })?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = e.path();
        let is_dir = path.is_dir();
        out.push((name, path, is_dir));
    }
    out.sort();
    Ok(out)
}

/// Work out the layout from the file names (and, for dbmate, the section markers).
pub fn detect_layout(dir: &Path) -> Result<Layout, SourceError> {
    let mut found: BTreeMap<&'static str, PathBuf> = BTreeMap::new();
    let mut dbmate = false;
    for (name, path, is_dir) in entries(dir)? {
        if !is_dir && !name.ends_with(".sql") {
            continue;
        }
        let shape = shape_of(&name, is_dir, &path);
        let label = match shape {
            Some(Shape::UpDown) => "golang-migrate (.up.sql/.down.sql)",
            Some(Shape::Flyway) => "flyway (V/U files)",
            Some(Shape::NativeRollback) => "native (.rollback.sql)",
            Some(Shape::Numbered) => {
                if read_text(&path).map(|t| has_dbmate_marker(&t)).unwrap_or(false) {
                    dbmate = true;
                }
                "numbered (NNN_name.sql)"
            }
            Some(Shape::DieselDir) => "diesel (folders with up.sql)",
            Some(Shape::PrismaDir) => "prisma (folders with migration.sql)",
            Some(Shape::Capture) => continue,
            None if is_dir => continue,
            None => {
                return Err(SourceError::NoLayout {
                    path,
                    layout: Layout::Native,
                    hint: "expected NNN_name.sql, NNN_name.rollback.sql, NNN_name.up.sql/.down.sql, \
                           V<version>__name.sql/U<version>__name.sql, or a dbmate file with -- migrate:up"
                        .into(),
                })
            }
        };
        found.entry(label).or_insert(path);
    }
    let labels: Vec<&str> = found.keys().copied().collect();
    let layout = match labels.as_slice() {
        [] => return Err(SourceError::Empty { dir: dir.to_path_buf(), layout: "any".into() }),
        ["golang-migrate (.up.sql/.down.sql)"] => Layout::GolangMigrate,
        ["flyway (V/U files)"] => Layout::Flyway,
        ["diesel (folders with up.sql)"] => Layout::Diesel,
        ["prisma (folders with migration.sql)"] => Layout::Prisma,
        ["numbered (NNN_name.sql)"] if dbmate => Layout::Dbmate,
        ["native (.rollback.sql)"]
        | ["numbered (NNN_name.sql)"]
        | ["native (.rollback.sql)", "numbered (NNN_name.sql)"] => Layout::Native,
        _ => {
            let found = found.iter().map(|(l, p)| format!("{l}, e.g. {}", p.display())).collect::<Vec<_>>().join("; ");
            return Err(SourceError::MixedLayouts { dir: dir.to_path_buf(), found });
        }
    };
    Ok(layout)
}

fn has_dbmate_marker(text: &str) -> bool {
    text.lines().any(|l| l.trim_start().starts_with("-- migrate:up"))
}

/// Load every migration of `dir` in `layout`.
pub(super) fn load(dir: &Path, layout: Layout) -> Result<Vec<Migration>, SourceError> {
    let mut found = Found {
        layout,
        forwards: BTreeMap::new(),
        rollbacks: Vec::new(),
        captures: Vec::new(),
        seen_prisma: BTreeMap::new(),
    };
    for (name, path, is_dir) in entries(dir)? {
        if is_dir {
            if matches!(layout, Layout::Diesel | Layout::Prisma) {
                found.folder(&name, &path)?;
            }
            continue;
        }
        if !name.ends_with(".sql") {
            continue;
        }
        if let Some(stem) = name.strip_suffix(".capture.sql") {
            found.capture(stem, path)?;
            continue;
        }
        found.file(&name, path)?;
    }
    found.migrations()
}

/// The files of a migration folder, sorted out by version as they are found.
struct Found {
    layout: Layout,
    forwards: BTreeMap<Version, (String, SqlText)>,
    rollbacks: Vec<(Version, SqlText)>,
    captures: Vec<(Version, SqlText)>,
    /// Prisma orders its folders by name, so two may share a timestamp: the later ones get
    /// `.1`, `.2`… after it (in name order, as Prisma runs them).
    seen_prisma: BTreeMap<String, usize>,
}

impl Found {
    fn no_fit(&self, path: &Path, hint: &str) -> SourceError {
        SourceError::NoLayout { path: path.to_path_buf(), layout: self.layout, hint: hint.into() }
    }

    fn add_forward(&mut self, v: Version, name: &str, sql: SqlText) -> Result<(), SourceError> {
        if let Some((_, first)) = self.forwards.get(&v) {
            return Err(SourceError::DuplicateVersion {
                version: v.to_string(),
                first: first.path.clone(),
                second: sql.path,
            });
        }
        self.forwards.insert(v, (name.to_string(), sql));
        Ok(())
    }

    /// A Diesel or Prisma migration folder: `VERSION_name/up.sql` (`migration.sql`), with
    /// `down.sql` and `capture.sql` beside it.
    fn folder(&mut self, name: &str, path: &Path) -> Result<(), SourceError> {
        let Some((v, n)) = split_version(name, true) else { return Ok(()) };
        let (file, what) = match self.layout {
            Layout::Prisma => ("migration.sql", "a prisma migration folder needs migration.sql"),
            _ => ("up.sql", "a diesel migration folder needs up.sql"),
        };
        let version = match self.layout {
            Layout::Prisma => {
                // Timestamps are 14 digits; a shorter one sorts (as text) like its
                // zero-padded form.
                let padded = if v.len() < 14 && v.chars().all(|c| c.is_ascii_digit()) {
                    format!("{v:0<14}")
                } else {
                    v.to_string()
                };
                let k = self.seen_prisma.entry(padded.clone()).or_insert(0);
                *k += 1;
                let (raw, order) = match *k {
                    1 => (v.to_string(), padded),
                    k => (format!("{v}.{}", k - 1), format!("{padded}.{}", k - 1)),
                };
                Version::parse_ordered_as(&raw, &order)
            }
            _ => Version::parse(v),
        }
        .ok_or_else(|| self.no_fit(path, "bad version"))?;
        let up = path.join(file);
        if !up.is_file() {
            return Err(self.no_fit(path, what));
        }
        self.add_forward(version.clone(), n, SqlText { text: read_text(&up)?, path: up })?;
        let down = path.join("down.sql");
        if down.is_file() {
            self.rollbacks.push((version.clone(), SqlText { text: read_text(&down)?, path: down }));
        }
        let capture = path.join("capture.sql");
        if capture.is_file() {
            self.captures.push((version, SqlText { text: read_text(&capture)?, path: capture }));
        }
        Ok(())
    }

    /// A data-capture step, `<forward file name>.capture.sql`.
    fn capture(&mut self, stem: &str, path: PathBuf) -> Result<(), SourceError> {
        let v = match self.layout {
            Layout::Flyway => flyway_parts(&format!("{stem}.sql")).map(|(_, v, _)| v.to_string()),
            _ => split_version(stem, false).map(|(v, _)| v.to_string()),
        };
        let version = v
            .and_then(|v| Version::parse(&v))
            .ok_or_else(|| self.no_fit(&path, "expected <forward file name>.capture.sql"))?;
        self.captures.push((version, SqlText { text: read_text(&path)?, path }));
        Ok(())
    }

    /// A `.sql` file, as the layout names forward and rollback files.
    fn file(&mut self, name: &str, path: PathBuf) -> Result<(), SourceError> {
        let stem = name.strip_suffix(".sql").unwrap_or(name);
        match self.layout {
            Layout::Diesel => Err(self.no_fit(&path, "diesel migrations live in folders VERSION_name/up.sql")),
            Layout::Prisma => Err(self.no_fit(&path, "prisma migrations live in folders VERSION_name/migration.sql")),
            Layout::GolangMigrate => {
                let (base, up) = if let Some(b) = stem.strip_suffix(".up") {
                    (b, true)
                } else if let Some(b) = stem.strip_suffix(".down") {
                    (b, false)
                } else {
                    return Err(self.no_fit(&path, "expected NNN_name.up.sql or NNN_name.down.sql"));
                };
                let (v, n) =
                    split_version(base, false).ok_or_else(|| self.no_fit(&path, "expected NNN_name.up.sql"))?;
                self.forward_or_rollback(v, n, path, !up)
            }
            Layout::Flyway => {
                if name.starts_with("R__") {
                    return Err(self.no_fit(
                        &path,
                        "repeatable migrations (R__) are not supported; run them as versioned migrations",
                    ));
                }
                let (kind, v, desc) = flyway_parts(name)
                    .ok_or_else(|| self.no_fit(&path, "expected V<version>__name.sql or U<version>__name.sql"))?;
                self.forward_or_rollback(v, desc, path, kind != 'V')
            }
            Layout::Native => {
                let (base, rollback) = match stem.strip_suffix(".rollback") {
                    Some(b) => (b, true),
                    None => (stem, false),
                };
                let (v, n) = split_version(base, false)
                    .ok_or_else(|| self.no_fit(&path, "expected NNN_name.sql or NNN_name.rollback.sql"))?;
                self.forward_or_rollback(v, n, path, rollback)
            }
            Layout::Dbmate => {
                let (v, n) = split_version(stem, false).ok_or_else(|| self.no_fit(&path, "expected NNN_name.sql"))?;
                let version = Version::parse(v).ok_or_else(|| self.no_fit(&path, "bad version"))?;
                let text = read_text(&path)?;
                let (up, down) = dbmate_sections(&text)
                    .ok_or_else(|| self.no_fit(&path, "a dbmate migration needs a `-- migrate:up` line"))?;
                self.add_forward(version.clone(), n, SqlText { text: up, path: path.clone() })?;
                if let Some(down) = down {
                    self.rollbacks.push((version, SqlText { text: down, path }));
                }
                Ok(())
            }
        }
    }

    /// A file of version `v`: the migration (named `name`), or its rollback.
    fn forward_or_rollback(&mut self, v: &str, name: &str, path: PathBuf, rollback: bool) -> Result<(), SourceError> {
        let version = Version::parse(v).ok_or_else(|| self.no_fit(&path, "bad version"))?;
        let sql = SqlText { text: read_text(&path)?, path };
        if rollback {
            self.rollbacks.push((version, sql));
            Ok(())
        } else {
            self.add_forward(version, name, sql)
        }
    }

    /// The migrations in version order, each with its rollback and capture step; a rollback
    /// or capture with no forward migration is an error.
    fn migrations(self) -> Result<Vec<Migration>, SourceError> {
        let mut migrations: BTreeMap<Version, Migration> = self
            .forwards
            .into_iter()
            .map(|(v, (name, forward))| {
                let directives = Directives::parse(&forward.text);
                let m = Migration {
                    version: v.clone(),
                    name,
                    checksum: checksum(&forward.text),
                    forward,
                    rollback: None,
                    capture: None,
                    directives,
                };
                (v, m)
            })
            .collect();
        for (v, sql) in self.rollbacks {
            match migrations.get_mut(&v) {
                Some(m) => m.rollback = Some(sql),
                None => return Err(SourceError::OrphanRollback { path: sql.path, version: v.to_string() }),
            }
        }
        for (v, sql) in self.captures {
            match migrations.get_mut(&v) {
                Some(m) => m.capture = Some(sql),
                None => return Err(SourceError::OrphanRollback { path: sql.path, version: v.to_string() }),
            }
        }
        Ok(migrations.into_values().collect())
    }
}

/// Split a dbmate file: each section keeps the whole file's layout with the other section
/// blanked (newlines kept), so positions in either are positions in the file. The down
/// section is `None` when it holds nothing but whitespace and comments.
pub(crate) fn dbmate_sections(text: &str) -> Option<(String, Option<String>)> {
    #[derive(PartialEq, Clone, Copy)]
    enum Sec {
        None,
        Up,
        Down,
    }
    let mut sec = Sec::None;
    let mut up = String::with_capacity(text.len());
    let mut down = String::with_capacity(text.len());
    let mut saw_up = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let marker = if t.starts_with("-- migrate:up") {
            saw_up = true;
            Some(Sec::Up)
        } else if t.starts_with("-- migrate:down") {
            Some(Sec::Down)
        } else {
            None
        };
        if let Some(s) = marker {
            sec = s;
            // Keep the marker in its own section (it carries options like transaction:false).
            let (u, d) = if s == Sec::Up { (line.to_string(), blank(line)) } else { (blank(line), line.to_string()) };
            up.push_str(&u);
            down.push_str(&d);
            continue;
        }
        match sec {
            Sec::Up => {
                up.push_str(line);
                down.push_str(&blank(line));
            }
            Sec::Down => {
                up.push_str(&blank(line));
                down.push_str(line);
            }
            Sec::None => {
                up.push_str(&blank(line));
                down.push_str(&blank(line));
            }
        }
    }
    if !saw_up {
        return None;
    }
    let down_has_sql = down.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with("--")
    });
    Some((up, down_has_sql.then_some(down)))
}

fn blank(line: &str) -> String {
    line.chars().map(|c| if c == '\n' || c == '\r' { c } else { ' ' }).collect()
}

/// Where the capture step of `m` lives: the forward file's name with `.capture.sql`
/// (Diesel: `capture.sql` in the migration's folder).
pub(super) fn capture_path(layout: Layout, m: &Migration) -> PathBuf {
    let fname = m.forward.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    match layout {
        Layout::Diesel | Layout::Prisma => m.forward.path.with_file_name("capture.sql"),
        Layout::GolangMigrate => m.forward.path.with_file_name(fname.replacen(".up.sql", ".capture.sql", 1)),
        _ => m.forward.path.with_file_name(format!("{}.capture.sql", fname.trim_end_matches(".sql"))),
    }
}

/// Where the rollback of `m` lives (or would be written) in `layout`.
pub(super) fn rollback_path(layout: Layout, dir: &Path, m: &Migration) -> PathBuf {
    let fname = m.forward.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    match layout {
        Layout::Native => dir.join(format!("{}.rollback.sql", fname.trim_end_matches(".sql"))),
        Layout::GolangMigrate => dir.join(fname.replacen(".up.sql", ".down.sql", 1)),
        Layout::Flyway => dir.join(format!("U{}", &fname[1..])),
        Layout::Dbmate => m.forward.path.clone(),
        Layout::Diesel | Layout::Prisma => m.forward.path.with_file_name("down.sql"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MigrationSet, SourceError};
    use super::*;
    use std::fs;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = d.path().join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        d
    }

    #[test]
    fn framework_tables_are_provided_when_referenced_and_not_created() {
        let d = folder(&[
            ("2020-01-01-000000_init/up.sql", "CREATE TABLE t (id int);"),
            ("2020-01-01-000000_init/down.sql", "DROP TABLE t;"),
            (
                "2020-02-01-000000_guard/up.sql",
                "CREATE TRIGGER g BEFORE INSERT ON __diesel_schema_migrations EXECUTE FUNCTION f();",
            ),
            ("2020-02-01-000000_guard/down.sql", "DROP TRIGGER g ON __diesel_schema_migrations;"),
        ]);
        let set = MigrationSet::load(d.path()).unwrap();
        let sql = set.framework_sql();
        assert_eq!(sql.len(), 1, "{sql:?}");
        assert!(sql[0].contains("__diesel_schema_migrations"));
        let d = folder(&[
            ("1_init.up.sql", "CREATE TABLE _sqlx_migrations (version bigint);"),
            ("1_init.down.sql", "DROP TABLE _sqlx_migrations;"),
            ("2_t.up.sql", "CREATE TABLE t (id int);"),
        ]);
        assert!(MigrationSet::load(d.path()).unwrap().framework_sql().is_empty());
    }

    #[test]
    fn native_layout_numeric_order() {
        let d = folder(&[
            ("10_ten.sql", "SELECT 10;"),
            ("2_two.sql", "SELECT 2;"),
            ("2_two.rollback.sql", "SELECT -2;"),
            ("README.md", "not sql"),
        ]);
        let s = MigrationSet::load(d.path()).unwrap();
        assert_eq!(s.layout, Layout::Native);
        let ids: Vec<_> = s.migrations.iter().map(|m| m.id()).collect();
        assert_eq!(ids, vec!["2_two", "10_ten"]);
        assert!(s.migrations[0].rollback.is_some());
        assert!(s.migrations[1].rollback.is_none());
        assert_eq!(s.migrations[0].checksum.len(), 64);
        assert_eq!(s.rollback_path(&s.migrations[1]), d.path().join("10_ten.rollback.sql"));
    }

    #[test]
    fn golang_migrate_flyway_diesel() {
        let d =
            folder(&[("001_a.up.sql", "SELECT 1;"), ("001_a.down.sql", "SELECT 2;"), ("002_b.up.sql", "SELECT 3;")]);
        let s = MigrationSet::load(d.path()).unwrap();
        assert_eq!(s.layout, Layout::GolangMigrate);
        assert_eq!(s.rollback_path(&s.migrations[1]), d.path().join("002_b.down.sql"));

        let d =
            folder(&[("V1__init.sql", "SELECT 1;"), ("V1_1__more.sql", "SELECT 2;"), ("U1__init.sql", "SELECT 3;")]);
        let s = MigrationSet::load(d.path()).unwrap();
        assert_eq!(s.layout, Layout::Flyway);
        assert_eq!(s.migrations[1].version.as_str(), "1_1");
        assert_eq!(s.migrations[0].name, "init");
        assert!(s.migrations[0].rollback.is_some());
        assert_eq!(s.rollback_path(&s.migrations[1]), d.path().join("U1_1__more.sql"));

        let d =
            folder(&[("2020-01-01-000000_init/up.sql", "SELECT 1;"), ("2020-01-01-000000_init/down.sql", "SELECT 2;")]);
        let s = MigrationSet::load(d.path()).unwrap();
        assert_eq!(s.layout, Layout::Diesel);
        assert_eq!(s.migrations[0].name, "init");
    }

    #[test]
    fn prisma_folders_in_prismas_order() {
        // Prisma runs its folders in name order: a short timestamp sorts as text, and two
        // folders may share one. `migration_lock.toml` is not a migration.
        let d = folder(&[
            ("migration_lock.toml", "provider = \"postgresql\""),
            ("20250326162113_baseline/migration.sql", "SELECT 1;"),
            ("20251013000000_b/migration.sql", "SELECT 2;"),
            ("20251013000000_a/migration.sql", "SELECT 3;"),
            ("20251013000000_a/down.sql", "SELECT 4;"),
            ("20251012_short/migration.sql", "SELECT 5;"),
            ("20251014_later/migration.sql", "SELECT 6;"),
        ]);
        let s = MigrationSet::load(d.path()).unwrap();
        assert_eq!(s.layout, Layout::Prisma);
        let names: Vec<&str> = s.migrations.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["baseline", "short", "a", "b", "later"]);
        assert_eq!(s.migrations[3].version.as_str(), "20251013000000.1");
        assert!(s.migrations[2].rollback.is_some());
        assert!(s.migrations[4].version.matches("20251014"));
        assert_eq!(s.rollback_path(&s.migrations[3]), d.path().join("20251013000000_b/down.sql"));
        assert_eq!(s.capture_path(&s.migrations[3]), d.path().join("20251013000000_b/capture.sql"));
    }

    #[test]
    fn dbmate_sections_keep_positions() {
        let text = "-- migrate:up\nCREATE TABLE t (a int);\n\n-- migrate:down\nDROP TABLE t;\n";
        let d = folder(&[("20240101_t.sql", text)]);
        let s = MigrationSet::load(d.path()).unwrap();
        assert_eq!(s.layout, Layout::Dbmate);
        let m = &s.migrations[0];
        assert_eq!(m.forward.text.len(), text.len());
        assert_eq!(m.forward.text.trim().lines().nth(1), Some("CREATE TABLE t (a int);"));
        let down = m.rollback.as_ref().unwrap();
        assert_eq!(down.text.find("DROP TABLE"), text.find("DROP TABLE"));
        assert!(!m.forward.text.contains("DROP"));
        let (_, none) = dbmate_sections("-- migrate:up\nSELECT 1;\n-- migrate:down\n\n").unwrap();
        assert!(none.is_none());
        assert!(
            Directives::parse(&dbmate_sections("-- migrate:up transaction:false\nSELECT 1;").unwrap().0).no_transaction
        );
    }

    #[test]
    fn bad_input_names_the_file() {
        let d = folder(&[("1_a.sql", "SELECT 1;"), ("01_b.sql", "SELECT 2;")]);
        let e = MigrationSet::load(d.path()).unwrap_err();
        assert!(matches!(e, SourceError::DuplicateVersion { .. }), "{e}");
        assert!(e.to_string().contains("1_a.sql") && e.to_string().contains("01_b.sql"), "{e}");

        let d = folder(&[("1_a.sql", "SELECT 1;"), ("2_b.rollback.sql", "SELECT 2;")]);
        let e = MigrationSet::load(d.path()).unwrap_err();
        assert!(matches!(e, SourceError::OrphanRollback { .. }), "{e}");
        assert!(e.to_string().contains("2_b.rollback.sql"));

        let d = folder(&[("1_a.sql", "SELECT 1;")]);
        fs::write(d.path().join("2_b.sql"), [0x53, 0xff, 0xfe]).unwrap();
        let e = MigrationSet::load(d.path()).unwrap_err();
        assert!(matches!(e, SourceError::NotUtf8 { offset: 1, .. }), "{e}");

        let d = folder(&[("README.md", "x")]);
        assert!(matches!(MigrationSet::load(d.path()).unwrap_err(), SourceError::Empty { .. }));

        let d = folder(&[("1_a.sql", "SELECT 1;"), ("add_users.sql", "SELECT 1;")]);
        let e = MigrationSet::load(d.path()).unwrap_err();
        assert!(matches!(e, SourceError::NoLayout { .. }), "{e}");
        assert!(e.to_string().contains("add_users.sql"));

        let d = folder(&[("1_a.up.sql", "SELECT 1;"), ("V2__b.sql", "SELECT 1;")]);
        assert!(matches!(MigrationSet::load(d.path()).unwrap_err(), SourceError::MixedLayouts { .. }));

        let d = folder(&[("migsafe.toml", "layot = \"native\"")]);
        let e = MigrationSet::load(d.path()).unwrap_err();
        assert!(matches!(e, SourceError::BadConfig { .. }), "{e}");
        assert!(e.to_string().contains("layot"));
    }

    #[test]
    fn capture_files_attach_to_their_migration() {
        let d = folder(&[("1_a.sql", "SELECT 1;"), ("1_a.capture.sql", "SELECT 2;"), ("2_b.sql", "SELECT 3;")]);
        let s = MigrationSet::load(d.path()).unwrap();
        assert_eq!(s.migrations.len(), 2);
        assert!(s.migrations[0].capture.is_some());
        assert_eq!(s.capture_path(&s.migrations[1]), d.path().join("2_b.capture.sql"));
        let d = folder(&[("1_a.up.sql", "SELECT 1;"), ("1_a.capture.sql", "SELECT 2;")]);
        let s = MigrationSet::load(d.path()).unwrap();
        assert!(s.migrations[0].capture.is_some());
        let d = folder(&[("1_a.sql", "SELECT 1;"), ("3_c.capture.sql", "SELECT 2;")]);
        assert!(matches!(MigrationSet::load(d.path()).unwrap_err(), SourceError::OrphanRollback { .. }));
    }

    #[test]
    fn config_names_layout_and_dir() {
        let d =
            folder(&[("migsafe.toml", "layout = \"golang-migrate\"\ndir = \"db\"\n"), ("db/1_a.up.sql", "SELECT 1;")]);
        let s = MigrationSet::load(d.path()).unwrap();
        assert_eq!(s.layout, Layout::GolangMigrate);
        assert_eq!(s.dir, d.path().join("db"));
    }

    #[test]
    fn loads_the_crates_io_corpus() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/crates-io");
        let s = MigrationSet::load(&dir).unwrap();
        assert_eq!(s.layout, Layout::GolangMigrate);
        assert_eq!(s.migrations.len(), 284);
        assert_eq!(s.migrations.iter().filter(|m| m.directives.no_transaction).count(), 7);
    }
}
