-- Webhook signing secrets are stored sealed (gateway/sealing.py): `sealed:v1:<key id>:...`.
-- Secrets stored before this migration stay readable as they are (`whsec_...`) until
-- `kovra secrets reseal` seals them; nothing Kovra writes from now on is plaintext.
ALTER TABLE webhook_endpoints
    DROP CONSTRAINT webhook_endpoints_secret_check,
    DROP CONSTRAINT webhook_endpoints_previous_secret_check,
    ADD CONSTRAINT webhook_endpoints_secret_check
        CHECK (secret LIKE 'sealed:v1:%' OR secret LIKE 'whsec\_%'),
    ADD CONSTRAINT webhook_endpoints_previous_secret_check
        CHECK (previous_secret LIKE 'sealed:v1:%' OR previous_secret LIKE 'whsec\_%');
