// Package dsr answers data subject requests — access (export) and erasure —
// for a site's declared users, named by user id or e-mail address, and keeps
// the register of requests a privacy officer must be able to show.
//
// A data subject is found in three places:
//
//   - the vault: values tokenized at ingestion, linked to the subject string
//     "user:<user id>" (consent.UserSubject) or "email:<address>"
//     (EmailSubject) and stored under a keyed hash of it;
//   - the event log: a declared user's events are stored under one log
//     subject per user pseudonym, so a request reads or deletes only that
//     user's messages, never rewriting the stream. The pseudonym changes
//     when the pseudonym key is rotated, so every key version is searched;
//   - the consent registry, and the aggregator's in-memory bounding state
//     of days not yet released.
//
// A request by e-mail covers the vault subject "email:<address>" and also
// the address used as a user id (sites that use the e-mail as their user
// id), as given and lower-cased.
//
// What erasure means, and what it does not reach, is written up in
// README.md in this directory.
package dsr
