/** @odoo-module */

import { registry } from "@web/core/registry";

// An accountant charges an invoice to the customer's saved card, after reading what will happen.
registry.category("web_tour.tours").add("crm_payment_charge_saved_card_tour", {
    steps: () => [
        {
            content: "The invoice offers to charge the saved card",
            trigger: ".o_form_view .o_statusbar_buttons button:contains('Charge Saved Card')",
            run: "click",
        },
        {
            content: "The dialog names the amount and the card",
            trigger: ".modal div[name='summary']:contains('120.00'):contains('VISA •••• 4242')",
        },
        {
            content: "Charge",
            trigger: ".modal button[name='action_charge']",
            run: "click",
        },
        {
            content: "The accountant is told what was charged",
            trigger: ".o_notification:contains('120.00 was charged')",
        },
    ],
});

// A salesperson cancels a subscription at the end of its period, with the customer's reason.
registry.category("web_tour.tours").add("crm_subscription_cancel_at_period_end_tour", {
    steps: () => [
        {
            content: "Cancel at the end of the period",
            trigger: ".o_form_view .o_statusbar_buttons button:contains('Cancel at Period End')",
            run: "click",
        },
        {
            content: "The dialog says when it ends and asks why",
            trigger: ".modal div[name='end_date']:contains('01/14/2030')",
        },
        {
            content: "Give the reason",
            trigger: ".modal div[name='reason'] textarea",
            run: "edit Moving to another tool",
        },
        {
            content: "Confirm",
            trigger: ".modal button[name='action_confirm']",
            run: "click",
        },
        {
            content: "The form says when it ends",
            trigger: ".o_form_view div[name='crm_ends_banner']:contains('ends on'):contains('01/14/2030')",
        },
        {
            content: "The undo button keeps the subscription; nothing offers to reactivate it",
            trigger:
                ".o_form_view .o_statusbar_buttons:not(:has(button:contains('Reactivate'))) button:contains('Keep Subscription')",
        },
    ],
});
