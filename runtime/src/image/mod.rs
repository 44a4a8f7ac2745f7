//! Images: references, the registry client, the content-addressed store, layer unpacking.
