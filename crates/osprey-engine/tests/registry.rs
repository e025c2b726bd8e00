//! The model repository's routing: names, versions, tasks and traffic weights,
//! over engines on fake backends (routing logic only, no numbers).

#![allow(clippy::expect_used)]

use std::sync::Arc;

use osprey_engine::{
    AdmissionConfig, BatchingConfig, Pipeline, Registry, ResolveError, Served, Task,
};
use osprey_testkit::{Script, fake_engine_for};

fn served(name: &str, version: &str, task: Task, traffic: Option<f64>) -> Served {
    let batching = BatchingConfig {
        replicas: 1,
        ..BatchingConfig::default()
    };
    let engine = fake_engine_for(task, &batching, AdmissionConfig::default(), &Script::new())
        .expect("fake engine");
    let pipeline = Arc::new(Pipeline::new(Arc::new(engine), None));
    Served::new(name.into(), version.into(), traffic, pipeline)
}

fn registry(models: Vec<Served>) -> Registry {
    let r = Registry::default();
    for m in models {
        assert!(r.add(m).is_ok());
    }
    r
}

#[test]
fn a_missing_model_field_takes_the_first_model_of_the_task() {
    let r = registry(vec![
        served("cls", "1", Task::Classify, None),
        served("mini", "1", Task::Embed, None),
        served("para", "1", Task::Embed, None),
    ]);
    let got = r.resolve(None, Task::Embed, None).expect("an embed model");
    assert_eq!(got.label, "mini@1");
    let got = r.resolve(None, Task::Classify, None).expect("a classifier");
    assert_eq!(got.label, "cls@1");
    assert_eq!(
        r.resolve(None, Task::Rerank, None).err(),
        Some(ResolveError::NoModel(Task::Rerank))
    );
}

#[test]
fn names_versions_and_tasks_are_checked() {
    let r = registry(vec![
        served("mini", "1", Task::Embed, None),
        served("mini", "2", Task::Embed, None),
        served("cls", "1", Task::Classify, None),
    ]);
    assert_eq!(
        r.resolve(Some("mini@1"), Task::Embed, None)
            .map(|m| m.label.clone()),
        Ok("mini@1".into())
    );
    // No weights: the newest version serves.
    assert_eq!(
        r.resolve(Some("mini"), Task::Embed, None)
            .map(|m| m.label.clone()),
        Ok("mini@2".into())
    );
    assert_eq!(
        r.resolve(Some("nope"), Task::Embed, None).err(),
        Some(ResolveError::Unknown("nope".into()))
    );
    assert_eq!(
        r.resolve(Some("mini@3"), Task::Embed, None).err(),
        Some(ResolveError::Unknown("mini@3".into()))
    );
    assert!(matches!(
        r.resolve(Some("cls"), Task::Embed, None),
        Err(ResolveError::WrongTask {
            task: Task::Classify,
            wanted: Task::Embed,
            ..
        })
    ));
    assert!(r.add(served("mini", "2", Task::Embed, None)).is_err());
}

#[test]
fn traffic_weights_split_requests_and_ab_keys_stick() {
    let r = registry(vec![
        served("mini", "a", Task::Embed, Some(0.9)),
        served("mini", "b", Task::Embed, Some(0.1)),
    ]);
    let b = (0..1000)
        .filter(|_| {
            r.resolve(Some("mini"), Task::Embed, None)
                .is_ok_and(|m| m.version == "b")
        })
        .count();
    assert!(
        (80..=120).contains(&b),
        "{b} of 1000 went to the 10% version"
    );
    for user in ["alice", "bob", "carol", "dave"] {
        let first = r
            .resolve(None, Task::Embed, Some(user))
            .map(|m| m.label.clone());
        for _ in 0..20 {
            let again = r
                .resolve(None, Task::Embed, Some(user))
                .map(|m| m.label.clone());
            assert_eq!(again, first, "{user} moved between versions");
        }
    }
    let keyed_b = (0..2000)
        .filter(|i| {
            r.resolve(None, Task::Embed, Some(&format!("user-{i}")))
                .is_ok_and(|m| m.version == "b")
        })
        .count();
    assert!(
        (140..=260).contains(&keyed_b),
        "{keyed_b} of 2000 keys on the 10% version"
    );
}

#[test]
fn removed_and_replaced_models_stop_routing() {
    let r = registry(vec![
        served("mini", "1", Task::Embed, None),
        served("para", "1", Task::Embed, None),
    ]);
    let old = r.get("para").expect("para");
    let replaced = r
        .replace(served("para", "1", Task::Embed, None))
        .expect("was served");
    assert!(Arc::ptr_eq(&old, &replaced));
    assert!(!Arc::ptr_eq(&r.get("para").expect("para"), &old));
    assert_eq!(r.remove("mini").len(), 1);
    assert_eq!(
        r.get("mini").err(),
        Some(ResolveError::Unknown("mini".into()))
    );
    r.loading("later");
    assert_eq!(
        r.get("later").err(),
        Some(ResolveError::Loading("later".into()))
    );
}
