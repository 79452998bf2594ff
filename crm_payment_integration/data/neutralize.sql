-- A copied database must neither receive the production Stripe events nor act on them.
UPDATE payment_provider
   SET crm_webhook_secret = NULL,
       crm_webhook_endpoint_id = NULL;
