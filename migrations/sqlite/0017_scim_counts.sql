-- How many SCIM Users and Groups an org has, for the total every full page of a list
-- says: counting 100,000 index entries on each page was most of a page's cost. Triggers
-- keep it in the transaction of each insert and delete, so it is exact and needs no
-- code path to remember it; SQLite fires them for the deletes a cascade makes too (a
-- connection or a user deleted). One row per org here: SQLite's writers are one at a
-- time anyway. (PostgreSQL spreads an org over shards; the column is kept alike.)
CREATE TABLE scim_counts (
    org_id INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    shard  INTEGER NOT NULL,
    users  BIGINT NOT NULL DEFAULT 0,
    groups BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, shard)
);

INSERT INTO scim_counts (org_id, shard, users, groups)
SELECT o.id, 0,
       (SELECT COUNT(*) FROM scim_users u WHERE u.org_id = o.id),
       (SELECT COUNT(*) FROM scim_groups g WHERE g.org_id = o.id)
FROM organizations o
WHERE EXISTS (SELECT 1 FROM scim_users u WHERE u.org_id = o.id)
   OR EXISTS (SELECT 1 FROM scim_groups g WHERE g.org_id = o.id);

CREATE TRIGGER scim_users_counted AFTER INSERT ON scim_users BEGIN
    INSERT INTO scim_counts (org_id, shard, users) VALUES (NEW.org_id, 0, 1)
    ON CONFLICT (org_id, shard) DO UPDATE SET users = users + 1;
END;
-- An UPDATE, not an upsert: when the org itself is deleted, its row is already gone.
CREATE TRIGGER scim_users_uncounted AFTER DELETE ON scim_users BEGIN
    UPDATE scim_counts SET users = users - 1 WHERE org_id = OLD.org_id AND shard = 0;
END;
CREATE TRIGGER scim_groups_counted AFTER INSERT ON scim_groups BEGIN
    INSERT INTO scim_counts (org_id, shard, groups) VALUES (NEW.org_id, 0, 1)
    ON CONFLICT (org_id, shard) DO UPDATE SET groups = groups + 1;
END;
CREATE TRIGGER scim_groups_uncounted AFTER DELETE ON scim_groups BEGIN
    UPDATE scim_counts SET groups = groups - 1 WHERE org_id = OLD.org_id AND shard = 0;
END;
