//! The rows' `depends_on` names, resolved once when the supervisor builds its slots: every
//! later question (may this unit start, what does `up SERVICE` bring along, in which order
//! does the stack stop) is answered from slot indices, never by searching names again.

use crate::stack::{self, Unit};

/// The dependencies of each slot, by slot index.
pub(crate) struct Dependencies {
    of: Vec<Needs>,
}

struct Needs {
    /// The slots it waits for; all of them come before it.
    slots: Vec<usize>,
    /// Every row it names, those this configuration does not run included (their ports are
    /// part of what it was started from).
    rows: Vec<&'static Unit>,
}

impl Dependencies {
    /// Resolves each unit's `depends_on` among `units` (in table order). A name of a row of
    /// [`stack::UNITS`] that this configuration does not run counts as met; any other name,
    /// or a dependency listed after its dependent, is an error naming both.
    pub(crate) fn resolve(units: &[&'static Unit]) -> anyhow::Result<Dependencies> {
        let mut of = Vec::with_capacity(units.len());
        for (index, unit) in units.iter().enumerate() {
            let mut needs = Needs {
                slots: Vec::new(),
                rows: Vec::new(),
            };
            for &name in unit.depends_on {
                match units.iter().position(|u| u.name == name) {
                    Some(dep) if dep < index => {
                        needs.slots.push(dep);
                        needs.rows.push(units[dep]);
                    }
                    Some(_) => anyhow::bail!(
                        "{} depends on {name}, which comes after it in the table; list {name} first",
                        unit.name
                    ),
                    None => match stack::unit(name) {
                        Some(row) => needs.rows.push(row),
                        None => anyhow::bail!(
                            "{} depends on {name:?}, which is no unit of the stack",
                            unit.name
                        ),
                    },
                }
            }
            of.push(needs);
        }
        Ok(Dependencies { of })
    }

    /// The slots that `slot` waits for.
    pub(super) fn of(&self, slot: usize) -> &[usize] {
        &self.of[slot].slots
    }

    /// The rows that `slot` names, run here or not.
    pub(super) fn rows_of(&self, slot: usize) -> &[&'static Unit] {
        &self.of[slot].rows
    }

    /// `slots` and every slot they depend on, directly or not, in table order.
    pub(crate) fn with_dependencies(&self, slots: &[usize]) -> Vec<usize> {
        let mut wanted = vec![false; self.of.len()];
        for &slot in slots {
            wanted[slot] = true;
        }
        // Dependencies come before their dependents: one backwards pass.
        for slot in (0..self.of.len()).rev() {
            if wanted[slot] {
                for &dep in self.of(slot) {
                    wanted[dep] = true;
                }
            }
        }
        (0..self.of.len()).filter(|&i| wanted[i]).collect()
    }

    /// The rows of `units` named and every row they depend on, in table order: what
    /// `up NAME…` brings along (a name that is no row is left out: the supervisor names it).
    pub(crate) fn named_with_dependencies(
        units: &[&'static Unit],
        names: &[String],
    ) -> anyhow::Result<Vec<&'static str>> {
        let named: Vec<usize> = (0..units.len())
            .filter(|&slot| names.iter().any(|name| name == units[slot].name))
            .collect();
        let slots = Self::resolve(units)?.with_dependencies(&named);
        Ok(slots.into_iter().map(|slot| units[slot].name).collect())
    }

    /// The slots that depend on `slot`, directly or not, in table order.
    pub(super) fn dependents_of(&self, slot: usize) -> Vec<usize> {
        (slot + 1..self.of.len())
            .filter(|&other| self.with_dependencies(&[other]).contains(&slot))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::tests::task;

    static BASE: Unit = task("deps-base", &[]);
    static MIDDLE: Unit = task("deps-middle", &["deps-base"]);
    static TOP: Unit = task("deps-top", &["deps-middle"]);
    static ALONE: Unit = task("deps-alone", &[]);
    static BESIDE_DISABLED: Unit = task("deps-beside", &["github-standin"]);
    static TYPO: Unit = task("deps-typo", &["postgress"]);

    #[test]
    fn up_names_bring_along_what_they_depend_on_in_table_order() {
        let with = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            Dependencies::named_with_dependencies(stack::UNITS, &names).expect("the table resolves")
        };
        assert_eq!(
            with(&["healthcheck", "nginx"]),
            ["postgres", "valkey", "nginx", "migrations", "healthcheck"]
        );
        assert_eq!(with(&["valkey"]), ["valkey"]);
        assert!(with(&["no-such-service"]).is_empty());
    }

    #[test]
    fn the_tables_dependencies_resolve_and_each_comes_first() {
        let deps = Dependencies::resolve(stack::UNITS).unwrap();
        for (index, unit) in stack::UNITS.iter().enumerate() {
            let names: Vec<&str> = deps
                .of(index)
                .iter()
                .map(|&d| stack::UNITS[d].name)
                .collect();
            assert_eq!(names, unit.depends_on, "{}", unit.name);
            assert!(deps.of(index).iter().all(|&d| d < index));
        }
    }

    #[test]
    fn an_unknown_or_later_dependency_is_named() {
        let err = Dependencies::resolve(&[&BASE, &TYPO]).err().unwrap();
        assert_eq!(
            err.to_string(),
            "deps-typo depends on \"postgress\", which is no unit of the stack"
        );
        let err = Dependencies::resolve(&[&MIDDLE, &BASE]).err().unwrap();
        assert_eq!(
            err.to_string(),
            "deps-middle depends on deps-base, which comes after it in the table; list deps-base first"
        );
    }

    #[test]
    fn a_row_this_configuration_does_not_run_counts_as_met() {
        let deps = Dependencies::resolve(&[&BESIDE_DISABLED]).unwrap();
        assert!(deps.of(0).is_empty());
        let rows: Vec<&str> = deps.rows_of(0).iter().map(|u| u.name).collect();
        assert_eq!(rows, ["github-standin"]);
    }

    #[test]
    fn a_subset_brings_its_dependencies_and_the_stop_walks_them_backwards() {
        let deps = Dependencies::resolve(&[&BASE, &MIDDLE, &TOP, &ALONE]).unwrap();
        assert_eq!(deps.with_dependencies(&[2]), [0, 1, 2]);
        assert_eq!(deps.with_dependencies(&[1, 3]), [0, 1, 3]);
        // The stop waits for these: direct and indirect dependents, nothing else.
        assert_eq!(deps.dependents_of(0), [1, 2]);
        assert_eq!(deps.dependents_of(1), [2]);
        assert!(deps.dependents_of(2).is_empty() && deps.dependents_of(3).is_empty());

        // The real table: every unit stops before each of its dependencies.
        let deps = Dependencies::resolve(stack::UNITS).unwrap();
        for slot in 0..stack::UNITS.len() {
            for &dep in deps.of(slot) {
                assert!(
                    deps.dependents_of(dep).contains(&slot),
                    "{slot} stops after {dep}"
                );
            }
        }
    }
}
