// Package alert writes the appliance's mails in the seed's formats and hands
// them to a sendmail-compatible program (msmtp); silence means healthy.
package alert
