-- Who suspended a member: an admin (the API or the console) or the IdP through SCIM
-- (active=false). SCIM's active=true lifts only a suspension SCIM made, so an IdP's routine
-- update never undoes an admin's decision.
ALTER TABLE memberships ADD COLUMN suspended_by TEXT CHECK (suspended_by IN ('admin', 'scim'));

-- Suspensions made before this column existed: SCIM's where the org's pushed User for that
-- person is inactive, an admin's otherwise.
UPDATE memberships SET suspended_by = CASE
    WHEN EXISTS (
        SELECT 1 FROM scim_users s
        WHERE s.org_id = memberships.org_id AND s.user_id = memberships.user_id AND s.active = FALSE
    ) THEN 'scim'
    ELSE 'admin'
END
WHERE status = 'suspended';
