-- Separation of duties: review cases are decided by the platform's compliance officers,
-- with keys of their own role, never by a tenant's own admin key.

ALTER TABLE api_keys DROP CONSTRAINT api_keys_role_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_role_check
    CHECK (role IN ('admin', 'operator', 'read_only', 'compliance'));
